"""The event feed: what was written to the log since the last look, read from the rows themselves.

The store is the bus. Every process that writes (the SMTP side, the delivery process, API actions,
other replicas on one PostgreSQL) writes its rows anyway; a poller in each web server reads what is
new by key, so the accept path does no work for events:

- a new message: its `recipients` rows (written with the message, in the same transaction);
- a delivery attempt, with what it did to each recipient: an `attempts` row;
- a recipient refused at RCPT: a `refusals` row;
- an API action (delete, read, tags, truncate, queue actions): a `log_changes` row (`changes.py`).

`EventFeed.poll()` reads all four in one read transaction, at most `batch` rows of each (`more`
says there are others), each table through a `KeyCursor` (`cursor.py`: keys committed out of
order on PostgreSQL, keys handed out again after a deletion on SQLite). A new message is
announced once, even when its recipients arrive over two polls.

A new message's summary is read back from the log, unless the process that accepted it handed
it to the feed (`EventFeed.accepted`): then the poll that finds its rows takes it from there,
and the accept path pays for a few Python objects instead of every announced message a read.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Select, Table, bindparam, desc, func, select
from sqlalchemy.engine import Connection, RowMapping

from mxrelay.store import listing, schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.changes import Change, change_from_row
from mxrelay.store.cursor import KeyCursor, Row
from mxrelay.store.message_log import AttemptView, RecipientResult
from mxrelay.store.refusal_log import REFUSAL_COLUMNS, RefusalView, refusal_view
from mxrelay.store.search import MessageSummary

BATCH = 500
"""Rows of each table one poll reads."""

GAP_WAIT = 10.0
"""Seconds a key skipped on PostgreSQL is awaited (a transaction still committing)."""

ANNOUNCED = 4096
"""New messages remembered as announced (one message's recipients may span two polls)."""

AWAITED_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    message_id: str
    view: AttemptView
    recipients: tuple[RecipientResult, ...]


@dataclass(frozen=True, slots=True)
class FeedEvents:
    """What one poll found, each kind oldest first."""

    new: tuple[MessageSummary, ...] = ()
    """The new messages' summaries (none when the poll was asked for none)."""
    attempts: tuple[AttemptEvent, ...] = ()
    refusals: tuple[RefusalView, ...] = ()
    changes: tuple[Change, ...] = ()
    more: bool = False
    """A table had more than one batch: poll again at once."""
    arrived: tuple[str, ...] = ()
    """The new messages' ids, summaries or not."""

    def __bool__(self) -> bool:
        return bool(self.arrived or self.new or self.attempts or self.refusals or self.changes)


@dataclass(frozen=True, slots=True)
class _Source:
    table: Table
    columns: tuple[str, ...]
    identity: Callable[[RowMapping], str]
    order_column: str
    order: Callable[[RowMapping], Any]
    value: Callable[[RowMapping], Any]
    reuses_keys: bool
    """Keys may be handed out again on SQLite (a rowid table without AUTOINCREMENT)."""
    rows: Select[Any] = field(init=False)
    """Every row's key and `columns`."""
    newer: Select[Any] = field(init=False)
    """Rows after `:last`, at most `:batch`, by key."""
    by_keys: Select[Any] = field(init=False)
    """The rows of the keys `:keys`."""
    before: Select[Any] = field(init=False)
    """The highest key of a row that arrived before `:order`."""

    def __post_init__(self) -> None:
        # Built once: building a statement for every poll cost more than running it (an empty
        # poll of the four tables took about 1.8 ms of CPU, four times a second).
        key = self.table.c.id
        rows = select(key, *(self.table.c[name] for name in self.columns))
        order: Column[Any] = self.table.c[self.order_column]
        statements = {
            "rows": rows,
            "newer": rows.where(key > bindparam("last")).order_by(key).limit(bindparam("batch")),
            "by_keys": rows.where(key.in_(bindparam("keys", expanding=True))),
            "before": select(func.max(key)).where(order < bindparam("order")),
        }
        for name, statement in statements.items():
            object.__setattr__(self, name, statement)


_ATTEMPT_COLUMNS = (
    "message_id",
    "variant",
    "attempt",
    "started_at",
    "duration",
    "transport",
    "outcome",
    "code",
    "enhanced",
    "text",
    "remote_id",
    "http_status",
    "error_code",
    "recipients",
)


def _attempt(row: RowMapping) -> AttemptEvent:
    view = AttemptView(**{name: row[name] for name in _ATTEMPT_COLUMNS[1:-1]})
    try:
        outcomes = json.loads(row["recipients"])
        results = tuple(
            RecipientResult(
                str(o["recipient"]),
                str(o["status"]),
                o.get("code"),
                o.get("enhanced") or "",
                o.get("text") or "",
            )
            for o in outcomes
        )
    except (ValueError, TypeError, KeyError):
        results = ()
    return AttemptEvent(row["message_id"], view, results)


SOURCES = {
    "recipients": _Source(
        schema.recipients,
        ("message_id",),
        identity=lambda row: str(row["message_id"]),
        order_column="message_id",
        order=lambda row: row["message_id"],
        value=lambda row: row["message_id"],
        reuses_keys=True,
    ),
    "attempts": _Source(
        schema.attempts,
        _ATTEMPT_COLUMNS,
        identity=lambda row: f"{row['message_id']}/{row['variant']}/{row['attempt']}",
        order_column="started_at",
        order=lambda row: row["started_at"],
        value=_attempt,
        reuses_keys=True,
    ),
    "refusals": _Source(
        schema.refusals,
        REFUSAL_COLUMNS[1:],
        identity=lambda row: f"{row['refused_at']!r}/{row['recipient']}",
        order_column="refused_at",
        order=lambda row: row["refused_at"],
        value=lambda row: refusal_view(row),
        reuses_keys=True,
    ),
    "log_changes": _Source(
        schema.log_changes,
        ("created_at", "kind", "data"),
        identity=lambda row: str(row["id"]),
        order_column="created_at",
        order=lambda row: row["created_at"],
        value=lambda row: change_from_row(row["id"], row["created_at"], row["kind"], row["data"]),
        reuses_keys=False,  # AUTOINCREMENT
    ),
}


class AcceptedSummaries:
    """Summaries of messages this process committed, until a poll finds their rows (added on
    the event loop, taken in the store's reading thread: under a lock). At most `limit` are
    kept, the oldest dropped first: one never found (deleted at once, or committed before the
    poll's starting point) goes in time."""

    def __init__(self, limit: int = ANNOUNCED) -> None:
        self.limit = limit
        self._found: OrderedDict[str, MessageSummary] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, summary: MessageSummary) -> None:
        with self._lock:
            self._found[summary.id] = summary
            while len(self._found) > self.limit:
                self._found.popitem(last=False)

    def take(self, ids: Sequence[str]) -> dict[str, MessageSummary]:
        """The summaries of these messages that were added, removed from here."""
        with self._lock:
            if not self._found:
                return {}
            taken = {i: self._found.pop(i, None) for i in ids}
        return {i: summary for i, summary in taken.items() if summary is not None}

    def __len__(self) -> int:
        return len(self._found)


@dataclass
class EventFeed:
    """One poller's position in the log. `await start()` once, then `await poll()` as often as
    wanted (one poll at a time)."""

    db: Database
    batch: int = BATCH
    clock: Callable[[], float] = time.monotonic
    cursors: dict[str, KeyCursor] = field(default_factory=dict)
    accepted: AcceptedSummaries = field(default_factory=AcceptedSummaries)
    """New messages' summaries from the process that accepted them, not read back."""
    _announced: OrderedDict[str, None] = field(default_factory=OrderedDict)

    async def start(self) -> None:
        """Begin at the newest row of each table: only what is written from now on is news."""
        self.cursors = await self.db.read(self._start)

    def _start(self, conn: Connection) -> dict[str, KeyCursor]:
        gap_wait = GAP_WAIT if self.db.dialect is Dialect.POSTGRESQL else 0.0
        cursors = {}
        for name, source in SOURCES.items():
            newest = conn.execute(source.rows.order_by(desc(source.table.c.id)).limit(1))
            row = newest.mappings().first()
            cursor = KeyCursor(0 if row is None else int(row["id"]), gap_wait=gap_wait)
            if row is not None:
                cursor.recent.append(_row(source, row))
            cursors[name] = cursor
        return cursors

    async def poll(self, *, summaries: bool = True) -> FeedEvents:
        """What is new since the last poll; without `summaries`, new messages by id only (for
        listeners that only need to know that mail arrived)."""
        return await self.db.read(self._poll, self.clock(), summaries)

    async def summaries(self, ids: Sequence[str]) -> list[MessageSummary]:
        """The summaries of new messages a poll without summaries found (in the order given)."""
        return await self.db.read(_summaries, ids)

    def _poll(self, conn: Connection, now: float, summaries: bool = True) -> FeedEvents:
        fresh: dict[str, list[Row]] = {}
        more = False
        for name, source in SOURCES.items():
            rows, full = self._read(conn, source, self.cursors[name], now)
            fresh[name] = rows
            more = more or full
        new_ids = [
            str(row.value) for row in fresh["recipients"] if self._first_time(str(row.value))
        ]
        known = self.accepted.take(new_ids)
        return FeedEvents(
            new=tuple(_summaries(conn, new_ids, known)) if summaries else (),
            attempts=tuple(row.value for row in fresh["attempts"]),
            refusals=tuple(row.value for row in fresh["refusals"]),
            changes=tuple(row.value for row in fresh["log_changes"]),
            more=more,
            arrived=tuple(new_ids),
        )

    def _first_time(self, message_id: str) -> bool:
        if message_id in self._announced:
            return False
        self._announced[message_id] = None
        while len(self._announced) > ANNOUNCED:
            self._announced.popitem(last=False)
        return True

    def _read(
        self, conn: Connection, source: _Source, cursor: KeyCursor, now: float
    ) -> tuple[list[Row], bool]:
        if source.reuses_keys and self.db.dialect is Dialect.SQLITE:
            _follow_deletions(conn, source, cursor)
        found: list[Row] = []
        awaited = cursor.awaited
        for start in range(0, len(awaited), AWAITED_PER_QUERY):
            chunk = awaited[start : start + AWAITED_PER_QUERY]
            rows = conn.execute(source.by_keys, {"keys": chunk}).mappings()
            found.extend(_row(source, row) for row in rows)
        rows = conn.execute(source.newer, {"last": cursor.last, "batch": self.batch}).mappings()
        newer = [_row(source, row) for row in rows]
        return cursor.take([*found, *newer], now), len(newer) >= self.batch


def _row(source: _Source, row: RowMapping) -> Row:
    return Row(int(row["id"]), source.identity(row), source.order(row), source.value(row))


def _follow_deletions(conn: Connection, source: _Source, cursor: KeyCursor) -> None:
    """Go back when the newest rows handed out were deleted (SQLite hands their keys out again)."""
    newest = cursor.newest_recent()
    if newest is None:
        return
    row = conn.execute(source.by_keys, {"keys": [newest.key]}).mappings().first()
    if row is not None and source.identity(row) == newest.identity:
        return
    remembered = {r.key: r.identity for r in cursor.recent}
    intact = [
        int(row["id"])
        for row in conn.execute(source.by_keys, {"keys": list(remembered)}).mappings()
        if source.identity(row) == remembered[int(row["id"])]
    ]
    if intact:
        cursor.rewind(max(intact))
        return
    oldest = cursor.recent[0].order
    before = conn.execute(source.before, {"order": oldest}).scalar()
    cursor.rewind(int(before or 0))


def _summaries(
    conn: Connection, ids: Sequence[str], known: dict[str, MessageSummary] | None = None
) -> list[MessageSummary]:
    """The listing's summaries of these messages, in the order given (those deleted since are
    left out); those `known` are not read."""
    by_id = dict(known or {})
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        by_id.update((found.id, found) for found in listing.summaries(conn, unknown))
    return [by_id[i] for i in ids if i in by_id]


async def mailbox_counts(db: Database) -> tuple[int, int]:
    """(messages, unread messages) in the log: Mailpit's `stats` frame, from the counts the
    store keeps beside the log (not counted per frame)."""

    def run(conn: Connection) -> tuple[int, int]:
        counts = listing.mailbox_counts(conn)
        return counts.total, counts.unread

    return await db.read(run)
