"""The search index of accepted messages, written behind their commit.

A message's full-text row (`message_search`) and searchable header fields (`message_fields`, with
their trigram index on SQLite) cost as much to write as all its other rows together, most of it
in the full-text tokenizers, and more when a commit holds one message. They are derived data: the
sink commits a message without them and answers 250, then hands it to the `SearchIndexer`, which
writes the rows of the messages committed meanwhile in one transaction of their own (on SQLite,
on the store's writer thread, where the tokenizers run without holding the GIL, so the SMTP
sessions go on meanwhile). Nothing acknowledged depends on them: the 250 still waits for the
message's own commit.

A reader of the index (a search, a deletion) first awaits `Database.indexed()`, which writes what
is pending at once: a search finds every message that was answered 250 before it began. Rows
lost with the process (a crash between a message's commit and its index transaction) are rebuilt
from the stored bytes when the relay next starts (`catch_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.engine import Connection

from mxrelay.log import event
from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.ingest import NewMessage, decompress, summarise
from mxrelay.store.message_log import (
    SearchRows,
    envelopes_of,
    insert_search_rows,
    search_rows,
    search_rows_of,
)
from mxrelay.tasks import cancel_and_wait

INDEX_DELAY = 0.5
"""Seconds the indexer waits for company after a commit: one index transaction takes the
messages of many commits, even from a single session (each costs a hand-over to the writer thread
and back, and holds the writer, which the next commit may then wait for); a reader never waits
for it (`flush`). Half a second rather than a tenth measured 2-5 % more acceptances at one and
20 sessions on SQLite (README, performance)."""
INDEX_BATCH = 500
"""Messages per index transaction at most."""
RETRY_DELAY = 1.0
"""Seconds before a failed index transaction is tried again."""
PENDING_LIMIT = 50_000
"""Messages waiting for the index at most (while the store fails): beyond, the oldest are left
to the next start's `catch_up`."""
CATCH_UP_MARGIN = 300.0
"""Seconds before the newest indexed message from which `catch_up` looks for messages without
search rows: a message is committed within moments of its `received_at`, and the index is
written in commit order."""
CATCH_UP_BATCH = 200

logger = logging.getLogger(__name__)


class SearchIndexer:
    """Writes the search rows of committed messages in the background. `start()`, `add()` each
    committed message, `close()` (which writes what is pending)."""

    def __init__(self, db: Database, *, delay: float = INDEX_DELAY) -> None:
        self._db = db
        self._delay = delay
        self._pending: list[NewMessage] = []
        self._added = 0
        """Messages handed over so far."""
        self._done = 0
        """Of those, how many are written (or left to `catch_up`)."""
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._work = asyncio.Event()
        """Something is pending."""
        self._hurry = asyncio.Event()
        """Write it now: a reader waits, or a batch is full."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="search-index")
        self._db.index_writer = self

    def add(self, record: NewMessage) -> None:
        """A message was committed without its search rows: write them soon."""
        self._pending.append(record)
        self._added += 1
        if len(self._pending) > PENDING_LIMIT:  # the store fails: left to `catch_up`
            del self._pending[0]
            self._done += 1
        self._work.set()
        if len(self._pending) >= INDEX_BATCH:
            self._hurry.set()

    async def flush(self) -> None:
        """Until every message added so far is written (after a failed attempt, the reader goes
        on: the rows are tried again later)."""
        target = self._added
        if self._done >= target or self._task is None or self._task.done():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._hurry.set()
        await waiter

    async def close(self) -> None:
        """Write what is pending, then stop."""
        if self._task is None:
            return
        await self.flush()
        self._db.index_writer = None
        await cancel_and_wait((self._task,))

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            if not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):  # waiting for company, at most `delay`
                    async with asyncio.timeout(self._delay):
                        await self._hurry.wait()
            self._work.clear()
            self._hurry.clear()
            batch, self._pending = self._pending[:INDEX_BATCH], self._pending[INDEX_BATCH:]
            if self._pending:
                self._work.set()
                self._hurry.set()
            try:
                await self._db.write(_write, batch, durable=False)
            except Exception as exc:  # derived rows: kept and tried again; readers go on
                event(logger, "store.index_failed", logging.WARNING, error=type(exc).__name__)
                self._pending[:0] = batch
                self._answer(self._added)
                await asyncio.sleep(RETRY_DELAY)
                self._work.set()
                continue
            self._done += len(batch)
            self._answer(self._done)

    def _answer(self, upto: int) -> None:
        """Release the readers that wait for no more than `upto` messages."""
        waiting = []
        for target, waiter in self._waiters:
            if target > upto:
                waiting.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = waiting


def _write(conn: Connection, batch: Sequence[NewMessage]) -> None:
    """The search rows of the messages still there (one deleted meanwhile gets none)."""
    m = schema.messages
    ids = [record.id for record in batch]
    present = set(conn.execute(select(m.c.id).where(m.c.id.in_(ids))).scalars())
    insert_search_rows(conn, [search_rows_of(r) for r in batch if r.id in present])


# --- after a crash ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unindexed:
    id: str
    mail_from: str
    encoding: str | None
    raw: bytes | None
    envelope: tuple[str, ...]


async def catch_up(db: Database) -> int:
    """Write the search rows of messages committed without them that the index never got (the
    relay stopped in between); how many. Their bytes give the fields; the recipients their
    transaction refused are not known any more, so `refused:` does not find them."""
    done = 0
    while rows := await db.read(_unindexed, CATCH_UP_BATCH):
        built = await asyncio.to_thread(lambda: [_rows(row) for row in rows])
        await db.write(_insert_missing, built)
        done += len(built)
        if len(rows) < CATCH_UP_BATCH:
            break
    return done


def _unindexed(conn: Connection, batch: int) -> list[_Unindexed]:
    """Messages without search rows, newer than the newest indexed one less a margin (rows
    older than the message list's columns are the backfill's: `addresses` is NULL there)."""
    m, f, b = schema.messages, schema.message_fields, schema.message_bodies
    newest_id = conn.execute(select(func.max(f.c.message_id))).scalar()
    newest = conn.execute(select(m.c.received_at).where(m.c.id == newest_id)).scalar()
    since = float("-inf") if newest is None else newest - CATCH_UP_MARGIN
    rows = conn.execute(
        select(m.c.id, m.c.mail_from, b.c.encoding, b.c.raw)
        .outerjoin(b, b.c.message_id == m.c.id)
        .where(
            m.c.received_at >= since,
            m.c.addresses.is_not(None),
            ~exists().where(f.c.message_id == m.c.id),
        )
        .order_by(m.c.received_at)
        .limit(batch)
    ).all()
    envelopes = envelopes_of(conn, [row.id for row in rows])
    return [
        _Unindexed(row.id, row.mail_from, row.encoding, row.raw, envelopes.get(row.id, ()))
        for row in rows
    ]


def _rows(row: _Unindexed) -> SearchRows:
    """CPU work (a parse): off the loop."""
    data = b"" if row.raw is None or row.encoding is None else decompress(row.encoding, row.raw)
    return search_rows(row.id, row.mail_from, row.envelope, (), summarise(data))


def _insert_missing(conn: Connection, rows: Sequence[SearchRows]) -> None:
    insert_search_rows(conn, rows)
