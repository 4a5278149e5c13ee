"""The data memory budget (MXRELAY_SMTP_DATA_MEMORY_LIMIT): what large messages may hold at once.

Memory otherwise grows with connections times message size (500 × 25 MiB by default), not with
what the deployment has. Admission rather than spooling to disk: after DATA the message goes
through the transforms, the store's compression or passthrough's relay, all of which want it in
memory, so a spool file would only move the peak while adding a write and a read to every
message. Counting costs a few integer operations per megabyte, and nothing at all for the small
messages that make up most mail. `DataBudget` is the listener's, shared; `DataHold` is what one
transaction holds of it.
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


class DataHold:
    """What one transaction holds of the budget, from DATA until its reply."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: DataBudget) -> None:
        self._budget = budget
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold `size` bytes of this message (drawn in steps of DATA_BUDGET_STEP past
        DATA_FREE_BYTES); False, holding nothing, when the budget cannot give that much."""
        if size <= DATA_FREE_BYTES or size <= self.held:
            return True
        budget = self._budget
        wanted = min(-(-size // DATA_BUDGET_STEP) * DATA_BUDGET_STEP, budget.limit)
        if budget.take(wanted - self.held):
            self.held = wanted
            return True
        self.release()
        return False

    def release(self) -> None:
        self._budget.give_back(self.held)
        self.held = 0
