"""Group commit: writes from many concurrent SMTP sessions and deliveries share one transaction.

`GroupCommitter` takes (writer, item) pairs from every caller, waits at most `window` for company,
writes up to `batch_limit` of them in one transaction (a kind's items together) and resumes each
caller once that transaction is on disk. A store fault fails the whole batch and turns the `store`
readiness condition red; any other failure is retried write by write, so it fails alone. While
idle, and while the store fails, a probe write notices a broken or mended store. Why it is built
so: docs/architecture/store.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mxrelay.health import ConditionName, Health
from mxrelay.metrics import Metrics
from mxrelay.store.backend import Database, StoreError, describe_error
from mxrelay.store.faults import probe, store_fault

Writer = Callable[[Connection, Sequence[Any]], Sequence[Any] | None]
"""Writes a batch of items of one kind; may return one result per item (handed to `submit`)."""

UNSYNCED_BATCHES = 2
"""Committed batches waiting for their fsync at most, while the next one is written."""
PROBE_IDLE = 10.0
"""Seconds without a commit after which the committer writes a probe (a store that turned
read-only, or a SQLite file deleted, shows before the next message needs it)."""
PROBE_RETRY = 1.0
"""Seconds between probes while the store fails."""
EXPECTED_FAILURES = (SQLAlchemyError, sqlite3.Error, OSError, StoreError, UnicodeError)
"""What a store or a driver raises for a failed write (logged in one line, without a traceback)."""

logger = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The write was not committed (the store failed, is full, or is closing)."""


class _Pending(NamedTuple):
    """A write waiting for its batch, with what the caller said of it (`submit`)."""

    writer: Writer
    item: Any
    future: asyncio.Future[Any]
    durable: bool
    large: bool
    one_statement: bool


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
        probe_idle: float | None = PROBE_IDLE,
        probe_retry: float = PROBE_RETRY,
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
        self._probe_idle = probe_idle
        self._probe_retry = probe_retry
        self._prober: asyncio.Task[None] | None = None
        self._store_ok = True
        self._last_commit = 0.0
        """Loop time at which the last transaction ended (committed or failed)."""

    async def __aenter__(self) -> GroupCommitter:
        self._task = asyncio.create_task(self._run(), name="group-commit")
        self._last_commit = asyncio.get_running_loop().time()
        if self._probe_idle is not None:
            self._prober = asyncio.create_task(self._probe_when_idle(), name="store-probe")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit what is pending, then stop taking writes."""
        if self._closed:
            return
        self._closed = True
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        self._pending.put_nowait(None)
        if self._task is not None:
            await self._task

    def submit_nowait(
        self,
        writer: Writer,
        item: Any,
        *,
        durable: bool = True,
        large: bool = False,
        one_statement: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue a write; the future resolves once it is committed (or fails with StoreUnavailable)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed or self._task is None or self._task.done():
            future.set_exception(StoreUnavailable("the store is closing"))
        else:
            self._pending.put_nowait(_Pending(writer, item, future, durable, large, one_statement))
        return future

    async def submit(
        self,
        writer: Writer,
        item: Any,
        *,
        durable: bool = True,
        large: bool = False,
        one_statement: bool = False,
    ) -> Any:
        """Write `item` and return once it is committed (on disk unless `durable` is off, see
        `Database.write`); raise StoreUnavailable if not. A batch is durable if any write in it
        is. Returns the writer's result for the item, if it gives one. The caller being cancelled
        does not withdraw the write (it may already be on disk). A batch is written with
        `Database.write_batch` (on SQLite, a lone write's statements on the event loop), unless
        a write in it is `large` (a big message, whose statements would hold the loop up).
        `one_statement`: `writer` writes this item, and any number of items like it, in one
        statement, so that a batch of such writes alone may be committed as that statement
        (`Database.write_batch`).
        """
        # Not shielded: the batch holds the write, not the future (a cancelled caller's future
        # is simply not answered), and a shield would cost the answer another turn of the loop.
        return await self.submit_nowait(
            writer, item, durable=durable, large=large, one_statement=one_statement
        )

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
            # Alone: no other write waits, and no fsync is under way (the session waits for
            # this one only).
            await self._commit(batch, alone=len(batch) == 1 and not self._unsynced)
            while len(self._unsynced) >= UNSYNCED_BATCHES:
                await asyncio.wait(self._unsynced, return_when=asyncio.FIRST_COMPLETED)
        if self._unsynced:
            await asyncio.wait(self._unsynced)
        # Anything submitted after the close marker is refused, never silently dropped.
        while not self._pending.empty():
            leftover = self._pending.get_nowait()
            if leftover is not None:
                _fail(leftover.future, StoreUnavailable("the store is closing"))

    async def _commit(self, batch: list[_Pending], *, alone: bool = False) -> None:
        durable = any(entry.durable for entry in batch)
        groups = _groups(batch)
        started = self._monotonic()
        synced: Awaitable[None] | None = None
        try:
            if any(entry.large for entry in batch):
                results = await self._db.write(_apply, groups, durable=durable)
            else:
                one = len(groups) == 1 and all(entry.one_statement for entry in batch)
                results, synced = await self._db.write_batch(
                    _apply, groups, durable=durable, alone=alone, one_statement=one
                )
        except Exception as exc:  # the committer's boundary: every waiting caller must hear back
            await self._recover(batch, exc)
            return
        if synced is None:
            self._answer(batch, results, started)
            return
        # Answered once on disk; the next batch is written meanwhile.
        waiting = asyncio.ensure_future(synced)
        self._unsynced.add(waiting)
        waiting.add_done_callback(lambda done: self._synced(done, batch, results, started))

    async def _recover(self, batch: list[_Pending], exc: Exception) -> None:
        """A batch failed: a store fault fails every write in it; otherwise each write is tried
        again alone (a batch of one already was: it fails, and readiness stays as it was)."""
        fault = store_fault(exc)
        self._log_failure(f"store commit of {len(batch)} writes failed", exc, counted=fault)
        if fault:
            self._failed(batch, exc, log_it=False)
            return
        if len(batch) == 1:
            _fail(batch[0].future, StoreUnavailable(describe_error(exc, 200)))
            return
        for position, entry in enumerate(batch):
            started = self._monotonic()
            try:
                results = await self._db.write(
                    _apply, {entry.writer: [entry.item]}, durable=entry.durable
                )
            except Exception as alone:  # this write's own failure, answered here
                fault = store_fault(alone)
                self._log_failure("a store write failed on its own", alone, counted=fault)
                if fault:  # the store broke meanwhile: no use trying the rest
                    self._failed(batch[position:], alone, log_it=False)
                    return
                _fail(entry.future, StoreUnavailable(describe_error(alone, 200)))
                continue
            self._answer([entry], results, started)

    async def _probe_when_idle(self) -> None:
        """Write a probe through the queue whenever no transaction ended for `probe_idle`
        seconds (`probe_retry` while the store fails); its outcome sets the condition."""
        assert self._probe_idle is not None
        loop = asyncio.get_running_loop()
        while self._task is not None and not self._task.done():
            wait = self._probe_idle if self._store_ok else self._probe_retry
            due = self._last_commit + wait
            if loop.time() < due:  # looks again at least every probe_retry: the state may change
                await asyncio.sleep(min(due - loop.time(), self._probe_retry))
                continue
            with contextlib.suppress(StoreUnavailable):
                await self.submit(probe, None, durable=False)

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

    def _failed(
        self,
        batch: list[_Pending],
        exc: Exception,
        *,
        log_it: bool = True,
        store_detail: str | None = None,
    ) -> None:
        """Every caller of a batch that was not committed, or not made durable, hears of it; the
        store is reported down (`store_detail`: why it refused the probe, if it was asked)."""
        detail = describe_error(exc, 200)
        if log_it:
            self._log_failure(f"store commit of {len(batch)} writes failed", exc)
        self._set_health(False, f"commits fail: {store_detail or detail}")
        for _, _, future, *_ in batch:
            _fail(future, StoreUnavailable(detail))

    def _log_failure(self, what: str, exc: Exception, *, counted: bool = True) -> None:
        """Log a failed transaction; `counted`: it failed for the store's sake (the metric, and
        its alert, are about the store, not about a value one write carried)."""
        self._last_commit = asyncio.get_running_loop().time()
        if isinstance(exc, EXPECTED_FAILURES):
            logger.error("%s: %s", what, describe_error(exc, 200))
        else:
            logger.error("%s unexpectedly", what, exc_info=exc)
        if counted and self._metrics is not None:
            self._metrics.store_commit_failures.inc()

    def _set_health(self, ok: bool, detail: str = "") -> None:
        self._store_ok = ok
        if self._health is not None:
            self._health.set(ConditionName.STORE, ok, detail)

    def _answer(
        self, batch: list[_Pending], results: dict[Writer, Sequence[Any] | None], started: float
    ) -> None:
        self._last_commit = asyncio.get_running_loop().time()
        if self._metrics is not None:
            self._metrics.store_commit_latency.observe(self._monotonic() - started)
            self._metrics.store_commit_batch.observe(len(batch))
        self._set_health(True)
        position: dict[Writer, int] = {}
        for writer, _, future, *_ in batch:
            index = position.get(writer, 0)
            position[writer] = index + 1
            outcome = results.get(writer)
            if not future.done():
                future.set_result(None if outcome is None else outcome[index])


def _groups(batch: list[_Pending]) -> dict[Writer, list[Any]]:
    groups: dict[Writer, list[Any]] = {}
    for writer, item, *_ in batch:
        groups.setdefault(writer, []).append(item)
    return groups


def _apply(conn: Connection, groups: dict[Writer, list[Any]]) -> dict[Writer, Sequence[Any] | None]:
    return {writer: writer(conn, items) for writer, items in groups.items()}


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        # A fire-and-forget write (a refusal) may have nobody awaiting it; mark it retrieved.
        with contextlib.suppress(StoreUnavailable):
            future.exception()
