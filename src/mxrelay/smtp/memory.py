"""The data memory budget (MXRELAY_SMTP_DATA_MEMORY_LIMIT): what large messages may hold at once.

Memory otherwise grows with connections times message size (500 × 25 MiB by default), not with
what the deployment has. Admission rather than spooling to disk: after DATA the message goes
through the transforms, the store's compression or passthrough's relay, all of which want it in
memory, so a spool file would only move the peak while adding a write and a read to every
message. Counting costs a few integer operations per megabyte, and nothing at all for the small
messages that make up most mail.
"""

from __future__ import annotations

from mxrelay.metrics import Metrics

DATA_FREE_BYTES = 64 * 1024
"""Message data a transaction holds before it draws on the data memory budget. Most mail is
smaller, so its path never touches the budget and is never refused for memory; all of it together
is bounded by the connection limit times this."""

DATA_BUDGET_STEP = 1024 * 1024
"""A large transaction draws on the budget in steps of this, not at every chunk."""


class DataBudget:
    """Bytes held by transactions past DATA_FREE_BYTES, from DATA until their reply; one that
    cannot take its next step is refused (452 4.3.1) at the end of its data."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.used = 0
        self._gauge = metrics.smtp_data_memory

    def available(self) -> int:
        return self.limit - self.used

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        self._gauge.set(self.used)
        return True

    def give_back(self, size: int) -> None:
        self.used -= size
        self._gauge.set(self.used)
