"""Operator actions on the queue (`mxrelay queue`): list with filters, find one entry, and retry,
hold, release or delete entries.

`QueueAdmin` works on an open store beside the delivery side's `Queue`, never through it. Its
statements are the named queries of `sql/*.sql`, except the listing, whose conditions are the
operator's (`filters.py`).
"""

from __future__ import annotations

__all__ = ["QueueAdmin", "QueueFilter", "QueueRow"]

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from mxrelay.store.backend import Database
from mxrelay.store.queue.entries import ENTRY_COLUMNS, HoldKind, QueueEntry, entry_from_row
from mxrelay.store.queue.filters import QueueFilter, listing

LISTED_MESSAGES_PER_QUERY = 500
"""Messages whose recipients one statement reads for a listing (bounded IN lists)."""


@dataclass(frozen=True, slots=True)
class QueueRow:
    entry: QueueEntry
    mail_from: str
    subject: str
    size: int
    recipients: tuple[tuple[str, str], ...]
    """(address, state) of the variant's recipients."""


class QueueAdmin:
    """What an operator can do to entries of an open store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sql = db.statements

    async def list_entries(
        self, where: QueueFilter, *, now: float, limit: int = 100
    ) -> list[QueueRow]:
        return await self.db.read(self._list, where, now, limit)

    def _list(self, conn: Connection, where: QueueFilter, now: float, limit: int) -> list[QueueRow]:
        rows = conn.execute(listing(where, now, limit)).all()
        entries = [(entry_from_row(row[: len(ENTRY_COLUMNS)]), row) for row in rows]
        ids = [e.message_id for e, _ in entries]
        by_variant: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for start in range(0, len(ids), LISTED_MESSAGES_PER_QUERY):
            messages = ids[start : start + LISTED_MESSAGES_PER_QUERY]
            recipient_rows = conn.execute(self._sql["listed_recipients"], {"messages": messages})
            for message_id, variant, address, state in recipient_rows:
                by_variant.setdefault((message_id, variant), []).append((address, state))
        return [
            QueueRow(
                entry=e,
                mail_from=row[-3],
                subject=row[-2],
                size=row[-1],
                recipients=tuple(by_variant.get((e.message_id, e.variant), ())),
            )
            for e, row in entries
        ]

    async def get(self, key: str) -> QueueEntry | None:
        """An entry by `MESSAGEID.VARIANT` (or MESSAGEID for variant 0)."""
        message_id, _, variant = key.partition(".")
        params = {"message_id": message_id, "variant": int(variant or 0)}
        row = await self.db.read(self._first, "entry_by_key", params)
        return None if row is None else entry_from_row(row)

    def _first(self, conn: Connection, name: str, params: dict[str, Any]) -> Any:
        return conn.execute(self._sql[name], params).first()

    async def retry(self, entries: Iterable[QueueEntry], now: float) -> int:
        """Due at once; a dead entry comes back with a fresh lifetime and its failed recipients."""
        return await self._operate(entries, "operator_retry", "operator_retry_recipients", now)

    async def hold(
        self, entries: Iterable[QueueEntry], now: float, *, reason: str = "held by an operator"
    ) -> int:
        extra = {"hold_kind": HoldKind.OPERATOR.value, "hold_reason": reason}
        return await self._operate(entries, "operator_hold", "hold_recipients", now, extra)

    async def release(self, entries: Iterable[QueueEntry], now: float) -> int:
        return await self._operate(entries, "operator_release", "release_recipients", now)

    async def delete(self, entries: Iterable[QueueEntry], now: float) -> int:
        """Take entries out of the live queue (state dead, reason recorded); the log is kept."""
        return await self._operate(entries, "operator_delete", "delete_recipients", now)

    async def _operate(
        self,
        entries: Iterable[QueueEntry],
        entry_query: str,
        recipient_query: str,
        now: float,
        extra: dict[str, Any] | None = None,
    ) -> int:
        targets = list(entries)
        return await self.db.write(
            self._operate_on, targets, entry_query, recipient_query, now, extra or {}
        )

    def _operate_on(
        self,
        conn: Connection,
        entries: list[QueueEntry],
        entry_query: str,
        recipient_query: str,
        now: float,
        extra: dict[str, Any],
    ) -> int:
        changed = 0
        for entry in entries:
            params = {"id": entry.id, "now": now, **extra}
            if conn.execute(self._sql[entry_query], params).first() is None:
                continue
            changed += 1
            conn.execute(
                self._sql[recipient_query],
                {"message_id": entry.message_id, "variant": entry.variant, "now": now},
            )
        return changed
