"""The durable queue: entries, leases, settlements and operator actions. The only home of queue SQL.

An entry is one message variant still owned by the queue. States follow Postfix's queues:

    queued ──claim──▶ active (leased) ──settle──▶ delivered | deferred (next attempt) | dead | held
       ▲                 │ lease expires / shutdown                     │            ▲ operator hold,
       └─────────────────┘                       deferred ──due──▶ claim│            │ config fault,
                                                                         └─ release ─┘ hold mode

("delivering" in the issue is `active`; "failed" is `dead`.) Claims are one atomic statement: with
PostgreSQL `FOR UPDATE SKIP LOCKED` lets replicas claim side by side, with SQLite the write
transaction is `BEGIN IMMEDIATE`. A claim sets `lease_owner` and `lease_expires_at`; the worker renews
leases while it delivers, and a replica that dies loses its entries once their leases expire.
Statements are named in `sql/<dialect>.sql`; filters for listing are built here with SQLAlchemy Core.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, and_, exists, func, insert, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.db import Database, Dialect
from mxrelay.store.log import AttemptRecord, insert_attempts
from mxrelay.store.record import NewMessage, decompress


class QueueState(enum.StrEnum):
    QUEUED = "queued"
    ACTIVE = "active"
    DEFERRED = "deferred"
    HELD = "held"
    DEAD = "dead"
    DELIVERED = "delivered"

    @classmethod
    def parse(cls, name: str) -> QueueState:
        """Accept the issue's words too: delivering = active, failed = dead."""
        aliases = {"delivering": "active", "failed": "dead", "leased": "active"}
        return cls(aliases.get(name.lower(), name.lower()))


LIVE_STATES = frozenset(
    {QueueState.QUEUED, QueueState.ACTIVE, QueueState.DEFERRED, QueueState.HELD}
)


class HoldKind(enum.StrEnum):
    OPERATOR = "operator"
    FAULT = "fault"
    """A configuration fault of the transport; released automatically once a probe succeeds."""
    MODE = "mode"
    """`MXRELAY_DELIVERY=hold`: kept until an operator releases it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry:
    id: int
    message_id: str
    variant: int
    state: QueueState
    created_at: float
    queued_at: float
    next_attempt_at: float
    attempts: int
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    hold_kind: str | None = None
    hold_reason: str | None = None
    last_error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.message_id}.{self.variant}"


_ENTRY_COLUMNS = (
    "id",
    "message_id",
    "variant",
    "state",
    "created_at",
    "queued_at",
    "next_attempt_at",
    "attempts",
    "lease_owner",
    "lease_expires_at",
    "hold_kind",
    "hold_reason",
    "last_error",
)


def _entry(row: Sequence[Any]) -> QueueEntry:
    values = dict(zip(_ENTRY_COLUMNS, row, strict=True))
    values["state"] = QueueState(values["state"])
    return QueueEntry(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientUpdate:
    address: str
    state: str
    code: int | None = None
    enhanced: str = ""
    text: str = ""
    counted: bool = True
    """Whether the attempt counts for this recipient (a throttle before sending does not)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """Where one attempt leaves an entry; written by `settle_batch` through the group committer."""

    entry: QueueEntry
    owner: str
    state: QueueState
    next_attempt_at: float
    attempts: int
    now: float
    last_error: str | None = None
    hold_kind: str | None = None
    hold_reason: str | None = None
    recipients: tuple[RecipientUpdate, ...] = ()
    attempt: AttemptRecord | None = None


@dataclass(frozen=True, slots=True)
class LoadedEntry:
    """What a delivery attempt needs, read from the log."""

    entry: QueueEntry
    mail_from: str
    smtputf8: bool
    received_header: str
    header_from: str
    data: bytes | None
    """The stored bytes as received; None if the body is gone (it should never be, for a live entry)."""
    transforms: tuple[str, ...]
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueStats:
    counts: dict[str, int]
    oldest_created_at: float | None


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


class Queue:
    """Queue operations on an open store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sql: dict[str, TextClause] = {name: db.sql(name) for name in db.queries}

    # --- accepting -----------------------------------------------------------------------------

    @staticmethod
    def enqueue(conn: Connection, items: Sequence[NewMessage]) -> None:
        """Create the entries of newly accepted messages (in the same transaction as the log)."""
        rows = []
        for item in items:
            state = QueueState.HELD if item.hold_reason else QueueState.QUEUED
            for plan in item.variants:
                rows.append(
                    {
                        "message_id": item.id,
                        "variant": plan.variant,
                        "state": state.value,
                        "created_at": item.received_at,
                        "queued_at": item.received_at,
                        "next_attempt_at": item.received_at,
                        "attempts": 0,
                        "lease_owner": None,
                        "lease_expires_at": None,
                        "hold_kind": HoldKind.MODE.value if item.hold_reason else None,
                        "hold_reason": item.hold_reason,
                        "last_error": None,
                        "updated_at": item.received_at,
                    }
                )
        conn.execute(insert(schema.queue), rows)

    # --- delivering ----------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, now: float, lease: float) -> list[QueueEntry]:
        """Lease up to `limit` due entries to `owner`."""
        params = {"owner": owner, "limit": limit, "now": now, "expires": now + lease}
        return await self.db.write(self._returning, "claim", params)

    def _returning(self, conn: Connection, name: str, params: dict[str, Any]) -> list[QueueEntry]:
        return [_entry(row) for row in conn.execute(self._sql[name], params)]

    def _count(self, conn: Connection, name: str, params: Any) -> int:
        return int(getattr(conn.execute(self._sql[name], params), "rowcount", 0) or 0)

    async def renew(self, entry_id: int, owner: str, now: float, lease: float) -> bool:
        """Extend a lease; False when it was lost (expired and taken back)."""
        params = {"id": entry_id, "owner": owner, "now": now, "expires": now + lease}
        return await self.db.write(self._count, "renew", params) > 0

    def settle_batch(self, conn: Connection, items: Sequence[Settlement]) -> None:
        """Group-committer writer: attempts, recipient states, then the entries themselves."""
        insert_attempts(conn, [s.attempt for s in items if s.attempt is not None])
        recipient_rows = [
            {
                "message_id": s.entry.message_id,
                "variant": s.entry.variant,
                "address": r.address,
                "state": r.state,
                "counted": 1 if r.counted else 0,
                "code": r.code,
                "enhanced": r.enhanced,
                "text": r.text[:2000],
                "now": s.now,
            }
            for s in items
            for r in s.recipients
        ]
        if recipient_rows:
            conn.execute(self._sql["settle_recipient"], recipient_rows)
        entry_rows = [
            {
                "id": s.entry.id,
                "owner": s.owner,
                "state": s.state.value,
                "next_attempt_at": s.next_attempt_at,
                "attempts": s.attempts,
                "hold_kind": s.hold_kind,
                "hold_reason": s.hold_reason,
                "last_error": s.last_error and s.last_error[:2000],
                "now": s.now,
            }
            for s in items
        ]
        conn.execute(self._sql["settle"], entry_rows)

    async def release_leases(self, entries: Iterable[QueueEntry], owner: str, now: float) -> None:
        """Hand leased entries back untried (shutdown before their delivery started or ended)."""
        rows = [{"id": e.id, "owner": owner, "now": now} for e in entries]
        if rows:
            await self.db.write(self._count, "release_lease", rows)

    async def requeue_expired(self, now: float) -> int:
        """Entries whose replica died (lease expired) become claimable again."""
        return await self.db.write(self._count, "requeue_expired", {"now": now})

    async def recover(self, now: float) -> int:
        """Start-up recovery. SQLite has one process per file, so every leased entry is a leftover
        of a crash; with PostgreSQL only expired leases are (other replicas may be delivering)."""
        if self.db.dialect is Dialect.POSTGRESQL:
            return await self.requeue_expired(now)
        return await self.db.write(self._count, "requeue_all_active", {"now": now})

    async def load(self, entry: QueueEntry) -> LoadedEntry | None:
        """The stored message and pending recipients of an entry (None if the message is gone)."""
        return await self.db.read(self._load, entry)

    def _load(self, conn: Connection, entry: QueueEntry) -> LoadedEntry | None:
        row = conn.execute(self._sql["load_job"], {"id": entry.id}).first()
        if row is None:
            return None
        recipient_rows = conn.execute(
            self._sql["pending_recipients"],
            {"message_id": entry.message_id, "variant": entry.variant},
        )
        recipients = tuple(r[0] for r in recipient_rows)
        mail_from, smtputf8, received, header_from, encoding, raw, transforms = row
        return LoadedEntry(
            entry=entry,
            mail_from=mail_from,
            smtputf8=bool(smtputf8),
            received_header=received,
            header_from=header_from,
            data=None if raw is None else decompress(encoding, raw),
            transforms=tuple(_json_list(transforms)),
            recipients=recipients,
        )

    async def next_due(self) -> float | None:
        value = await self.db.read(self._scalar, "next_due")
        return None if value is None else float(value)

    def _scalar(self, conn: Connection, name: str) -> Any:
        return conn.execute(self._sql[name]).scalar()

    async def stats(self) -> QueueStats:
        return await self.db.read(self._stats)

    def _stats(self, conn: Connection) -> QueueStats:
        counts = {str(s): int(n) for s, n in conn.execute(self._sql["counts_by_state"])}
        oldest = conn.execute(self._sql["oldest_waiting"]).scalar()
        return QueueStats(counts, None if oldest is None else float(oldest))

    # --- operator actions ----------------------------------------------------------------------

    async def list_entries(
        self, where: QueueFilter, *, now: float, limit: int = 100
    ) -> list[QueueRow]:
        return await self.db.read(self._list, where, now, limit)

    def _list(self, conn: Connection, where: QueueFilter, now: float, limit: int) -> list[QueueRow]:
        q, m, r = schema.queue, schema.messages, schema.recipients
        query = (
            select(*(q.c[c] for c in _ENTRY_COLUMNS), m.c.mail_from, m.c.subject, m.c.size)
            .join(m, m.c.id == q.c.message_id)
            .where(*self._conditions(where, now))
            .order_by(q.c.created_at, q.c.id)
            .limit(limit)
        )
        rows = conn.execute(query).all()
        entries = [(_entry(row[: len(_ENTRY_COLUMNS)]), row) for row in rows]
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
        query = select(*(q.c[c] for c in _ENTRY_COLUMNS)).where(
            q.c.message_id == message_id, q.c.variant == int(variant or 0)
        )
        row = await self.db.read(lambda conn: conn.execute(query).first())
        return None if row is None else _entry(row)

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


def _json_list(value: str) -> list[str]:
    loaded = json.loads(value)
    return [str(item) for item in loaded] if isinstance(loaded, list) else []
