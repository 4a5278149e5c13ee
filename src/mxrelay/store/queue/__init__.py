"""The durable queue: entries, leases and settlements, the delivery side's home of queue SQL.

An entry is one message variant still owned by the queue. States follow Postfix's queues:

    queued ──claim──▶ active (leased) ──settle──▶ delivered | deferred (next attempt) | dead | held
       ▲                 │ lease expires / shutdown                     │            ▲ operator hold,
       └─────────────────┘                       deferred ──due──▶ claim│            │ config fault,
                                                                         └─ release ─┘ hold mode

Claims are one atomic statement: with PostgreSQL `FOR UPDATE SKIP LOCKED` lets replicas claim side
by side, with SQLite the write transaction is `BEGIN IMMEDIATE`. A claim sets `lease_owner` and
`lease_expires_at`; the worker renews leases while it delivers, and a replica that dies loses its
entries once their leases expire. The statements are the named queries of `sql/*.sql`; the entry
values are `entries.py`'s, the operator's actions `admin.py`'s (`QueueAdmin`, beside a `Queue`).
"""

from __future__ import annotations

__all__ = [
    "HoldKind",
    "LoadedEntry",
    "Queue",
    "QueueEntry",
    "QueueStats",
    "RecipientStatus",
    "RecipientUpdate",
    "Settlement",
]

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from mxrelay.model import QueueState
from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.bulk import (
    TableRows,
    Update,
    execute_many,
    insert_returning,
    insert_tables,
    postgres_write,
)
from mxrelay.store.ingest import NewMessage, decompress
from mxrelay.store.message_log import AttemptRecord, attempt_rows, insert_attempts
from mxrelay.store.queue.entries import (
    ENTRY_COLUMNS,
    HoldKind,
    QueueEntry,
    RecipientStatus,
    entry_from_row,
)

SETTLE_ENTRY = (
    "state = v.state, next_attempt_at = v.next_attempt_at, attempts = v.attempts, "
    "lease_owner = NULL, lease_expires_at = NULL, hold_kind = v.hold_kind, "
    "hold_reason = v.hold_reason, last_error = v.last_error, updated_at = v.updated_at"
)
"""`settle` (sql/common.sql) for many entries at once on PostgreSQL (`Queue.settle_batch`)."""

SETTLE_RECIPIENT = (
    "state = v.state, attempts = t.attempts + v.attempts, code = v.code, "
    "enhanced = v.enhanced, text = v.text, updated_at = v.updated_at"
)
"""`settle_recipient` (sql/common.sql) for many recipients at once on PostgreSQL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientUpdate:
    address: str
    state: RecipientStatus
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
    hold_kind: HoldKind | None = None
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
    data: bytes | None
    """The stored bytes as received; None if the body is gone (it should never be, for a live entry)."""
    transforms: tuple[str, ...]
    recipients: tuple[str, ...]
    received_at: float = 0.0
    """When the message was accepted (epoch seconds)."""
    header_from: str | None = None
    """The From addresses read at accept time (`ingest.Summary.header_from`)."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    counts: dict[QueueState, int]
    """Entries by state (a state with none is missing)."""
    oldest_created_at: float | None


class Queue:
    """The delivery side's queue operations on an open store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sql = db.statements

    # --- accepting -----------------------------------------------------------------------------

    @staticmethod
    def enqueue(
        conn: Connection, items: Sequence[NewMessage], *, log: Sequence[TableRows] = ()
    ) -> list[tuple[QueueEntry, ...]]:
        """Create the entries of newly accepted messages (in the same transaction as the log),
        after the rows of `log` (the messages' own: `message_log.log_rows`), written with them.

        Returns, per message, the entries created already leased (`NewMessage.lease`)."""
        states = [_first_state(item) for item in items]
        pairs = zip(items, states, strict=True)
        rows = [row for item, state in pairs for row in _entry_rows(item, state)]
        if QueueState.ACTIVE not in states:
            insert_tables(conn, [*log, (schema.queue, rows)])
            return [() for _ in items]
        returned = insert_returning(
            conn, schema.queue, rows, ENTRY_COLUMNS, key=("message_id", "variant"), before=log
        )
        leased: dict[str, list[QueueEntry]] = {}
        for entry in map(entry_from_row, returned):
            if entry.state is QueueState.ACTIVE:
                leased.setdefault(entry.message_id, []).append(entry)
        return [tuple(leased.get(item.id, ())) for item in items]

    # --- delivering ----------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, now: float, lease: float) -> list[QueueEntry]:
        """Lease up to `limit` due entries to `owner`.

        Claims, renewals and lease hand-backs are not waited onto the disk (`durable=False`): lost
        in a crash, they leave the entry claimable again, which start-up recovery does anyway."""
        params = {"owner": owner, "limit": limit, "now": now, "expires": now + lease}
        return await self.db.write(self._returning, "claim", params, durable=False)

    def _returning(self, conn: Connection, name: str, params: dict[str, Any]) -> list[QueueEntry]:
        return [entry_from_row(row) for row in conn.execute(self._sql[name], params)]

    def _count(self, conn: Connection, name: str, params: Any) -> int:
        return int(getattr(conn.execute(self._sql[name], params), "rowcount", 0) or 0)

    def settle_batch(self, conn: Connection, items: Sequence[Settlement]) -> None:
        """Group-committer writer: attempts, recipient states, then the entries themselves; on
        PostgreSQL in one statement (`postgres_write`), so that a batch of settlements costs one
        round trip (and, not waited onto the disk, no transaction: `Database.write_batch`)."""
        attempts = [s.attempt for s in items if s.attempt is not None]
        recipient_rows = _recipient_rows(items)
        entry_rows = [
            {
                "id": s.entry.id,
                "lease_owner": s.owner,
                "state": s.state.value,
                "next_attempt_at": s.next_attempt_at,
                "attempts": s.attempts,
                "hold_kind": s.hold_kind and s.hold_kind.value,
                "hold_reason": s.hold_reason,
                "last_error": s.last_error and s.last_error[:2000],
                "updated_at": s.now,
            }
            for s in items
        ]
        if self.db.dialect is Dialect.POSTGRESQL:
            postgres_write(
                conn,
                [(schema.attempts, attempt_rows(attempts))],
                [
                    Update(
                        schema.recipients,
                        recipient_rows,
                        ("message_id", "variant", "address"),
                        SETTLE_RECIPIENT,
                        where="t.state IN ('queued', 'deferred', 'held')",
                    ),
                    Update(
                        schema.queue,
                        entry_rows,
                        ("id", "lease_owner"),
                        SETTLE_ENTRY,
                        where="t.state = 'active'",
                    ),
                ],
            )
            return
        insert_attempts(conn, attempts)
        execute_many(conn, self._sql["settle_recipient"], recipient_rows)
        execute_many(conn, self._sql["settle"], entry_rows)

    async def release_leases(self, entries: Iterable[QueueEntry], owner: str, now: float) -> None:
        """Hand leased entries back untried (shutdown before their delivery started or ended)."""
        rows = [{"id": e.id, "owner": owner, "now": now} for e in entries]
        if rows:
            await self.db.write(self._count, "release_lease", rows, durable=False)

    async def requeue_expired(self, now: float) -> int:
        """Entries whose replica died (lease expired) become claimable again."""
        return await self.db.write(self._count, "requeue_expired", {"now": now}, durable=False)

    async def requeue_owner(self, owner: str, now: float) -> int:
        """Entries leased to `owner`, a delivery process that died, become claimable again."""
        params = {"owner": owner, "now": now}
        return await self.db.write(self._count, "requeue_owner", params, durable=False)

    async def recover(self, now: float) -> int:
        """Start-up recovery. SQLite has one process per file, so every leased entry is a leftover
        of a crash; with PostgreSQL only expired leases are (other replicas may be delivering)."""
        if self.db.dialect is Dialect.POSTGRESQL:
            return await self.requeue_expired(now)
        return await self.db.write(self._count, "requeue_all_active", {"now": now}, durable=False)

    async def release_faults(self, now: float) -> int:
        """Release every entry a configuration fault held (the transport works again); an
        operator's holds stay."""
        return await self.db.write(self._release_faults, now)

    def _release_faults(self, conn: Connection, now: float) -> int:
        rows = conn.execute(self._sql["release_fault_held"], {"now": now}).all()
        for _, message_id, variant in rows:
            conn.execute(
                self._sql["release_recipients"],
                {"message_id": message_id, "variant": variant, "now": now},
            )
        return len(rows)

    async def load_many(self, entries: Sequence[QueueEntry]) -> dict[int, LoadedEntry]:
        """The stored message and pending recipients of each claimed entry, in one read
        transaction, by entry id (an entry whose message is gone is missing)."""
        if not entries:
            return {}
        return await self.db.read(self._load_many, list(entries))

    def _load_many(self, conn: Connection, entries: list[QueueEntry]) -> dict[int, LoadedEntry]:
        by_id = {e.id: e for e in entries}
        rows = conn.execute(self._sql["load_entries"], {"ids": list(by_id)}).all()
        messages = list({e.message_id for e in entries})
        recipient_rows = conn.execute(self._sql["pending_recipients"], {"messages": messages})
        pending: dict[tuple[str, int], list[str]] = {}
        for message_id, variant, address in recipient_rows:
            pending.setdefault((message_id, variant), []).append(address)
        loaded: dict[int, LoadedEntry] = {}
        for row in rows:
            entry_id, accepted_at, mail_from, smtputf8, received = row[:5]
            encoding, raw, transforms, header_from = row[5:]
            entry = by_id[entry_id]
            loaded[entry_id] = LoadedEntry(
                entry=entry,
                mail_from=mail_from,
                smtputf8=bool(smtputf8),
                received_header=received,
                data=None if raw is None else decompress(encoding, raw),
                transforms=tuple(_json_list(transforms)),
                recipients=tuple(pending.get((entry.message_id, entry.variant), ())),
                received_at=float(accepted_at),
                header_from=header_from,
            )
        return loaded

    async def renew_many(
        self, entries: Sequence[QueueEntry], owner: str, now: float, lease: float
    ) -> set[int]:
        """Extend the leases of `entries`; returns the ids still held (the others were lost)."""
        if not entries:
            return set()
        ids = [e.id for e in entries]
        return await self.db.write(self._renew_many, ids, owner, now + lease, durable=False)

    def _renew_many(self, conn: Connection, ids: list[int], owner: str, expires: float) -> set[int]:
        params = {"ids": ids, "owner": owner, "expires": expires}
        return {row[0] for row in conn.execute(self._sql["renew_many"], params)}

    async def stats(self) -> QueueStats:
        return await self.db.read(self._stats)

    def _stats(self, conn: Connection) -> QueueStats:
        rows = conn.execute(self._sql["counts_by_state"])
        counts = {QueueState(state): int(n) for state, n in rows}
        oldest = conn.execute(self._sql["oldest_waiting"]).scalar()
        return QueueStats(counts, None if oldest is None else float(oldest))


def _first_state(item: NewMessage) -> QueueState:
    """Held in hold mode; leased to this process when the sink asked for it; queued otherwise."""
    if item.hold_reason:
        return QueueState.HELD
    return QueueState.ACTIVE if item.lease else QueueState.QUEUED


def _entry_rows(item: NewMessage, state: QueueState) -> list[dict[str, Any]]:
    """The queue rows of one accepted message, one per variant."""
    owner, expires = item.lease if item.lease and state is QueueState.ACTIVE else (None, None)
    at = item.received_at
    return [
        {
            "message_id": item.id,
            "variant": plan.variant,
            "state": state.value,
            "created_at": at,
            "queued_at": at,
            "next_attempt_at": at,
            "attempts": 0,
            "lease_owner": owner,
            "lease_expires_at": expires,
            "hold_kind": HoldKind.MODE.value if state is QueueState.HELD else None,
            "hold_reason": item.hold_reason,
            "last_error": None,
            "updated_at": at,
        }
        for plan in item.variants
    ]


def _json_list(value: str) -> list[str]:
    loaded = json.loads(value)
    return [str(item) for item in loaded] if isinstance(loaded, list) else []


def _recipient_rows(items: Sequence[Settlement]) -> list[dict[str, Any]]:
    """The recipient changes of `items`, one per recipient row: an address listed twice in one
    entry's results is changed by its first result only (one attempt, counted once)."""
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for s in items:
        for r in s.recipients:
            key = (s.entry.message_id, s.entry.variant, r.address)
            if key not in rows:
                rows[key] = {
                    "message_id": s.entry.message_id,
                    "variant": s.entry.variant,
                    "address": r.address,
                    "state": r.state.value,
                    "attempts": 1 if r.counted else 0,
                    "code": r.code,
                    "enhanced": r.enhanced,
                    "text": r.text[:2000],
                    "updated_at": s.now,
                }
    return list(rows.values())
