"""Operator actions on the queue (`mxrelay queue`, later the web API): list with filters, and
retry, hold, release, delete. Part of `Queue` (its base class), split out to keep modules small;
the statements are the named queries of `sql/*.sql`, the filters SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, and_, exists, func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.queue.entries import (
    ENTRY_COLUMNS,
    HoldKind,
    QueueEntry,
    QueueState,
    entry_from_row,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    """Operator filters for `mxrelay queue` (all optional; combined with AND)."""

    states: tuple[QueueState, ...] = ()
    sender: str | None = None
    recipient: str | None = None
    older_than: float | None = None
    """Seconds: only entries created at least this long ago."""
    newer_than: float | None = None
    message_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueRow:
    entry: QueueEntry
    mail_from: str
    subject: str
    size: int
    recipients: tuple[tuple[str, str], ...]
    """(address, state) of the variant's recipients."""


class QueueAdmin:
    """What an operator can do to entries. `Queue` inherits it."""

    db: Database
    _sql: dict[str, TextClause]

    # --- operator actions ----------------------------------------------------------------------

    async def list_entries(
        self, where: QueueFilter, *, now: float, limit: int = 100
    ) -> list[QueueRow]:
        return await self.db.read(self._list, where, now, limit)

    def _list(self, conn: Connection, where: QueueFilter, now: float, limit: int) -> list[QueueRow]:
        q, m, r = schema.queue, schema.messages, schema.recipients
        query = (
            select(*(q.c[c] for c in ENTRY_COLUMNS), m.c.mail_from, m.c.subject, m.c.size)
            .join(m, m.c.id == q.c.message_id)
            .where(*self._conditions(where, now))
            .order_by(q.c.created_at, q.c.id)
            .limit(limit)
        )
        rows = conn.execute(query).all()
        entries = [(entry_from_row(row[: len(ENTRY_COLUMNS)]), row) for row in rows]
        ids = [e.message_id for e, _ in entries]
        by_variant: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for start in range(0, len(ids), 500):  # bounded IN lists
            recipient_rows = conn.execute(
                select(r.c.message_id, r.c.variant, r.c.address, r.c.state)
                .where(r.c.message_id.in_(ids[start : start + 500]))
                .order_by(r.c.message_id, r.c.variant, r.c.position)
            )
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

    def _conditions(self, where: QueueFilter, now: float) -> list[Any]:
        q, m, r = schema.queue, schema.messages, schema.recipients
        conditions: list[Any] = []
        if where.states:
            conditions.append(q.c.state.in_([s.value for s in where.states]))
        if where.sender is not None:
            conditions.append(func.lower(m.c.mail_from).contains(where.sender.lower()))
        if where.recipient is not None:
            conditions.append(
                exists().where(
                    and_(
                        r.c.message_id == q.c.message_id,
                        r.c.variant == q.c.variant,
                        func.lower(r.c.address).contains(where.recipient.lower()),
                    )
                )
            )
        if where.older_than is not None:
            conditions.append(q.c.created_at <= now - where.older_than)
        if where.newer_than is not None:
            conditions.append(q.c.created_at >= now - where.newer_than)
        if where.message_ids:
            conditions.append(q.c.message_id.in_(where.message_ids))
        return conditions

    async def get(self, key: str) -> QueueEntry | None:
        """An entry by `MESSAGEID.VARIANT` (or MESSAGEID for variant 0)."""
        message_id, _, variant = key.partition(".")
        q = schema.queue
        query = select(*(q.c[c] for c in ENTRY_COLUMNS)).where(
            q.c.message_id == message_id, q.c.variant == int(variant or 0)
        )
        row = await self.db.read(lambda conn: conn.execute(query).first())
        return None if row is None else entry_from_row(row)

    async def retry(self, entries: Iterable[QueueEntry], now: float) -> int:
        """Due at once; a dead entry comes back with a fresh lifetime and its failed recipients."""
        return await self._operate(entries, "operator_retry", "operator_retry_recipients", now)

    async def hold(
        self,
        entries: Iterable[QueueEntry],
        now: float,
        *,
        reason: str = "held by an operator",
        kind: HoldKind = HoldKind.OPERATOR,
    ) -> int:
        extra = {"hold_kind": kind.value, "hold_reason": reason}
        return await self._operate(entries, "operator_hold", "hold_recipients", now, extra)

    async def release(self, entries: Iterable[QueueEntry], now: float) -> int:
        return await self._operate(entries, "operator_release", "release_recipients", now)

    async def delete(self, entries: Iterable[QueueEntry], now: float) -> int:
        """Take entries out of the live queue (state dead, reason recorded); the log is kept."""
        return await self._operate(entries, "operator_delete", "delete_recipients", now)

    async def release_faults(self, now: float) -> int:
        """Release every entry a configuration fault held (the transport works again)."""
        return await self.db.write(self._release_faults, now)

    def _release_faults(self, conn: Connection, now: float) -> int:
        rows = conn.execute(self._sql["release_fault_held"], {"now": now}).all()
        for _, message_id, variant in rows:
            conn.execute(
                self._sql["release_recipients"],
                {"message_id": message_id, "variant": variant, "now": now},
            )
        return len(rows)

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
