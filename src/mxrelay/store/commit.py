"""Group commit: writes from many concurrent SMTP sessions and deliveries share one transaction.

A durable accept costs a commit and its fsync; done one message at a time, the disk's flush rate
caps the relay. Like PostgreSQL's and Postfix's cleanup/queue-manager designs, the committer takes
writes from every caller, waits at most `window` for company, and commits up to `batch_limit` of
them in one transaction; each caller is resumed only once that transaction is on disk (or has
failed). While one commit runs, the next batch gathers, so the batch grows with the load and the
latency stays one commit.

Where the store makes a commit durable apart from writing it (`Database.write_batch` on SQLite:
the fsync of the log runs on a thread), the next batch is written while the previous one's fsync
runs, and each batch's callers are answered when their own fsync returns; at most
`UNSYNCED_BATCHES` batches wait for the disk at once, so the batches keep growing with the load.

The window is skipped while writes come one at a time (a single session), where it would only add
latency, and when writes gathered during the previous commit. A write is a pair (writer, item):
`writer` is a function that writes a list of items of its kind on a connection
(`log.insert_messages`, `Queue.settle_batch`, ...). Within a batch, items are grouped by writer,
so each kind is written with one `executemany` per table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.store.db import Database, describe_error

Writer = Callable[[Connection, Sequence[Any]], Sequence[Any] | None]
"""Writes a batch of items of one kind; may return one result per item (handed to `submit`)."""

HEALTH_CONDITION = "store"
UNSYNCED_BATCHES = 2
"""Committed batches waiting for their fsync at most, while the next one is written."""

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The write was not committed (the store failed, is full, or is closing)."""


_Pending = tuple[Writer, Any, "asyncio.Future[Any]", bool, bool]
"""(writer, item, the caller's future, durable, large)."""


class GroupCommitter:
    """Batches writes into shared transactions. Use as an async context manager."""

    def __init__(
        self,
        db: Database,
        *,
        window: float = 0.001,
        batch_limit: int = 256,
        metrics: Metrics | None = None,
        health: Health | None = None,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._db = db
        self._window = window
        self._limit = batch_limit
        self._metrics = metrics
        self._health = health
        self._monotonic = monotonic
        self._pending: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_batch = 0
        self._unsynced: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> GroupCommitter:
        self._task = asyncio.create_task(self._run(), name="group-commit")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit what is pending, then stop taking writes."""
        if self._closed:
            return
        self._closed = True
        self._pending.put_nowait(None)
        if self._task is not None:
            await self._task

    def submit_nowait(
        self, writer: Writer, item: Any, *, durable: bool = True, large: bool = False
    ) -> asyncio.Future[Any]:
        """Queue a write; the future resolves once it is committed (or fails with StoreUnavailable)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed or self._task is None or self._task.done():
            future.set_exception(StoreUnavailable("the store is closing"))
        else:
            self._pending.put_nowait((writer, item, future, durable, large))
        return future

    async def submit(
        self, writer: Writer, item: Any, *, durable: bool = True, large: bool = False
    ) -> Any:
        """Write `item` and return once it is committed (on disk unless `durable` is off, see
        `Database.write`); raise StoreUnavailable if not. A batch is durable if any write in it
        is. Returns the writer's result for the item, if it gives one. The caller being cancelled
        does not withdraw the write (it may already be on disk). A batch is written with
        `Database.write_batch` (statements on the event loop), unless a write in it is `large`
        (a big message, whose statements would hold the loop up).
        """
        # Not shielded: the batch holds the write, not the future (a cancelled caller's future
        # is simply not answered), and a shield would cost the answer another turn of the loop.
        return await self.submit_nowait(writer, item, durable=durable, large=large)

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._pending.get()
            if first is None:
                break
            # Wait for company only when some is expected and none is here yet: a lone writer
            # (one SMTP session) is committed at once instead of paying the window on every
            # message, and writes that gathered during the previous commit go without delay.
            if self._window > 0 and self._pending.empty() and self._last_batch > 1:
                await asyncio.sleep(self._window)
            batch = [first]
            while len(batch) < self._limit:
                try:
                    nxt = self._pending.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._last_batch = len(batch)
            await self._commit(batch)
            while len(self._unsynced) >= UNSYNCED_BATCHES:
                await asyncio.wait(self._unsynced, return_when=asyncio.FIRST_COMPLETED)
        if self._unsynced:
            await asyncio.wait(self._unsynced)
        # Anything submitted after the close marker is refused, never silently dropped.
        while not self._pending.empty():
            leftover = self._pending.get_nowait()
            if leftover is not None:
                _fail(leftover[2], StoreUnavailable("the store is closing"))

    async def _commit(self, batch: list[_Pending]) -> None:
        groups: dict[Writer, list[Any]] = {}
        for writer, item, *_ in batch:
            groups.setdefault(writer, []).append(item)
        durable = any(entry[3] for entry in batch)
        started = self._monotonic()
        synced: Awaitable[None] | None = None
        try:
            if any(entry[4] for entry in batch):
                results = await self._db.write(_apply, groups, durable=durable)
            else:
                results, synced = await self._db.write_batch(_apply, groups, durable=durable)
        except Exception as exc:  # the committer's boundary: every waiting caller must hear back
            self._failed(batch, exc)
            return
        if synced is None:
            self._answer(batch, results, started)
            return
        # Answered once on disk; the next batch is written meanwhile.
        waiting = asyncio.ensure_future(synced)
        self._unsynced.add(waiting)
        waiting.add_done_callback(lambda done: self._synced(done, batch, results, started))

    def _synced(
        self,
        done: asyncio.Future[None],
        batch: list[_Pending],
        results: dict[Writer, Sequence[Any] | None],
        started: float,
    ) -> None:
        self._unsynced.discard(done)
        exc = done.exception()
        if exc is None:
            self._answer(batch, results, started)
        else:
            self._failed(batch, exc if isinstance(exc, Exception) else Exception(repr(exc)))

    def _failed(self, batch: list[_Pending], exc: Exception) -> None:
        """Every caller of a batch that was not committed, or not made durable, hears of it."""
        detail = describe_error(exc, 200)
        if isinstance(exc, SQLAlchemyError | OSError):
            log.error("store commit of %d writes failed: %s", len(batch), detail)
        else:
            log.error("store commit of %d writes failed unexpectedly", len(batch), exc_info=exc)
        if self._metrics is not None:
            self._metrics.store_commit_failures.inc()
        if self._health is not None:
            self._health.set(HEALTH_CONDITION, False, f"commits fail: {detail}")
        for _, _, future, *_ in batch:
            _fail(future, StoreUnavailable(detail))

    def _answer(
        self, batch: list[_Pending], results: dict[Writer, Sequence[Any] | None], started: float
    ) -> None:
        if self._metrics is not None:
            self._metrics.store_commit_latency.observe(self._monotonic() - started)
            self._metrics.store_commit_batch.observe(len(batch))
        if self._health is not None:
            self._health.set(HEALTH_CONDITION, True)
        position: dict[Writer, int] = {}
        for writer, _, future, *_ in batch:
            index = position.get(writer, 0)
            position[writer] = index + 1
            outcome = results.get(writer)
            if not future.done():
                future.set_result(None if outcome is None else outcome[index])


def _apply(conn: Connection, groups: dict[Writer, list[Any]]) -> dict[Writer, Sequence[Any] | None]:
    return {writer: writer(conn, items) for writer, items in groups.items()}


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        # A fire-and-forget write (a refusal) may have nobody awaiting it; mark it retrieved.
        with contextlib.suppress(StoreUnavailable):
            future.exception()
