"""The store on SQLite: one writer connection, group-commit batches written beside the event loop,
fsynced apart.

Writes take one writer connection in turn, in `BEGIN IMMEDIATE` transactions; readers have threads
and connections of their own (WAL). A durable commit is SQLite's `synchronous=FULL` taken apart: the
commit with NORMAL, then an fsync of the log on the writer thread while the next group-commit batch
is already written; a batch of one write alone is written on the event loop, a larger one begun
and written on the writer thread, after the fsync before it. Checkpoints run on a thread of their
own while the relay's writes wait, so that the log is written from its start again after each,
and a write into a database file deleted under the relay is refused. Why it is built so:
docs/architecture/store.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from mxrelay.store.backend import Database, StoreError, Target

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a write from another process (the CLI) waits for the relay's write to end."""

READ_THREADS = 4
BUSY_POLL = 0.0002
BUSY_POLLS = 20
"""How often the relay's batch tries again to begin on the loop while its delivery process (or
the `mxrelay queue` command) writes, a loop turn or BUSY_POLL apart, before it waits for the lock
on the writer thread; their transactions are short, and SQLite's own wait sleeps a millisecond
or more at a time."""
READ_CACHE = 64 * 1024 * 1024
"""Bytes of page cache of each reader connection, at most, unless MXRELAY_STORE_SQLITE_READ_CACHE
says otherwise (SQLite's default is 2 MiB; it grows only with what is read): a search of the
message log looks ids up in indexes of tens of megabytes at a million messages, each page not
cached is a system call, and the reader threads each have their own cache. At 16 MiB a search
for a word in one message in a hundred took 110 ms there, at 64 MiB 84 ms
(`bench/message_log.py`)."""
CHECKPOINT_COMMITS = 64
"""Commits between two checkpoints: the log stays at a few megabytes."""
CHECKPOINT_INTERVAL = 0.25
"""Seconds after which the relay checkpoints a log that was written to, even without commits of
its own: the delivery process's writes fill the log too (a backlog delivered while no mail
comes in), and only the relay checkpoints."""
CHECKPOINT_WAIT = 0.05
"""Seconds a checkpoint waits for the delivery process's write to end, and then for readers
still reading the log, before it settles for what it could copy (the next one tries again)."""
LOG_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes the log file is cut back to when it starts over after a checkpoint (SQLite's
`journal_size_limit`): a burst of large messages does not leave a file that size for ever, and
below it the log is written over in place (an fdatasync of blocks already allocated needs no
journal commit of the file system)."""

QUICK_FSYNC = 0.005
"""Seconds the last fsync may have taken for a batch alone to be fsynced on the event loop: a
disk that stalls (a throttled volume, a checkpoint's flush) holds the loop once, and the fsyncs
go back to the writer thread until one there is quick again, so the SMTP sessions and the health
endpoints keep being served."""

T = TypeVar("T")

logger = logging.getLogger(__name__)


class SqliteDatabase(Database):
    """Writes take the one writer connection in turn on the store's writer thread, except a
    `write_batch` alone, whose statements (and, while fsyncs are quick, its fsync) run on the
    event loop; reads run on a few reader threads. Opened `inline` (the delivery process's
    store), every read and write runs on the event loop, and only the fsyncs and checkpoints on
    threads."""

    def __init__(
        self,
        target: Target,
        *,
        synchronous: str,
        busy_polls: int = 0,
        inline: bool = False,
        checkpoints: bool = True,
        read_cache: int = READ_CACHE,
    ) -> None:
        super().__init__(target)
        self._busy_polls = busy_polls
        self._inline = inline
        assert target.path is not None
        self._path = target.path
        self._wal = target.path.with_name(target.path.name + "-wal")
        self._fsync = synchronous.lower() == "full"
        self._writer = _engine(target, writer=True)
        self._reader = _engine(target, writer=False, read_cache=read_cache)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="store-write")
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="store-checkpoint")
        self._read_threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="store-read")
        self._write_lock = asyncio.Lock()
        self._conn: Connection | None = None
        self._committed = 0
        """Commits on the writer connection so far (counted under the write lock)."""
        self._synced = 0
        """Of those, how many are known to be on disk (the writer thread's)."""
        self._last_fsync = 0.0
        """Seconds the last fsync took."""
        self._checkpoints = checkpoints
        """Whether this store checkpoints (the one holding the file's lock: see `open_store`)."""
        self._checkpoint_at = CHECKPOINT_COMMITS
        self._checkpointing: concurrent.futures.Future[None] | None = None
        """The checkpoint under way, which this store's next write waits for."""
        self._checkpointed: tuple[float, int | None] = (float("-inf"), None)
        """(monotonic time, the log's modification time) when the last checkpoint began."""
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._wal_fd: int | None = None
        """The log, opened once: it stays the same file while this store's connections are
        open (SQLite removes it only when the last connection to the database closes)."""
        self._identity: tuple[int, int] | None = None
        """(device, inode) of the database file when the writer connection opened it."""

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        if self._inline:
            result, synced = await self.write_batch(fn, *args, durable=durable)
            if synced is not None:
                await synced
            return result
        async with self._write_lock:
            await self._after_checkpoint()
            conn = await self._connection()
            self._check_file()
            return await self._on_writer(self._write_here, conn, fn, args, durable)

    async def write_batch(
        self,
        fn: Callable[..., T],
        *args: Any,
        durable: bool = True,
        alone: bool = False,
        one_statement: bool = False,
    ) -> tuple[T, Awaitable[None] | None]:
        """A batch `alone` is written and, while fsyncs are quick (`QUICK_FSYNC`), fsynced here,
        on the loop: its writers wait for nothing else, and handing the work to the writer thread
        and back costs about as much again as the fsync, on the path of every message of a lone
        SMTP session. Any other batch is written on the writer thread (`_write_beside`): SQLite
        writes its B-trees and the log's pages there without the GIL while the loop serves the
        sessions whose writes gather into the next batch (measured: docs/architecture/store.md)."""
        async with self._write_lock:
            await self._after_checkpoint()
            conn = await self._connection()
            self._check_file()
            if not (alone or self._inline):
                result = await self._on_writer(self._write_beside, conn, fn, args)
            else:
                driver = _driver(conn)
                if not await _begin_soon(driver, self._busy_polls):
                    # Another process writes: wait for it on the writer thread, not on the loop.
                    result = await self._on_writer(self._write_here, conn, fn, args, durable)
                    return result, None
                result = _transaction(conn, driver, fn, args)
            self._committed += 1
            synced_here = alone and durable and self._fsync and self._last_fsync <= QUICK_FSYNC
            if synced_here:
                self.sync()
            self._checkpoint_when_due()
        if synced_here or not (durable and self._fsync):
            return result, None
        return result, self._on_writer(self.sync)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._inline:
            return _in_transaction(self._reader, fn, args)
        return await asyncio.get_running_loop().run_in_executor(
            self._read_threads, _in_transaction, self._reader, fn, args
        )

    async def dispose(self) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    # --- on the writer thread --------------------------------------------------------------

    def sync(self) -> None:
        """Make every commit so far durable: fsync the log (through a descriptor of its own:
        fsync flushes the file, whoever wrote it). Nothing to do when an fsync begun after the
        last commit has already returned. On the writer thread, or on the loop for a batch
        alone (under the write lock); two at once are harmless: each fsyncs what was committed
        before it began."""
        if not self._fsync:
            return
        target = self._committed
        if target <= self._synced:
            return
        if self._wal_fd is None:
            self._wal_fd = os.open(self._wal, os.O_RDONLY)
        started = time.monotonic()
        _datasync(self._wal_fd)
        self._last_fsync = time.monotonic() - started
        self._synced = target

    def _write_here(
        self, conn: Connection, fn: Callable[..., T], args: tuple[Any, ...], durable: bool
    ) -> T:
        driver = _driver(conn)
        driver.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another process
        result = _transaction(conn, driver, fn, args)
        self._committed += 1
        if durable:
            self.sync()
        self._checkpoint_when_due()
        return result

    def _write_beside(self, conn: Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """A group-commit batch, begun here rather than on the loop: after the fsync of the one
        before, which runs on this thread too, so that SQLite's write lock is free while the disk
        works. Begun on the loop, the lock was held through every fsync, and the delivery
        process's writes (which SQLite's busy handler retries a millisecond or more apart)
        almost never found it free: while mail came in, delivery stalled."""
        driver = _driver(conn)
        if not _begin_polling(driver, self._busy_polls):
            driver.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another process
        return _transaction(conn, driver, fn, args)

    def _checkpoint_when_due(self) -> None:
        """Every CHECKPOINT_COMMITS commits (counted under the write lock), a checkpoint on its
        own thread, so that no fsync waits behind it; this store's next write waits for it
        (`_after_checkpoint`)."""
        if self._checkpoints and self._committed >= self._checkpoint_at:
            self._start_checkpoint()

    def _start_checkpoint(self) -> None:
        self._checkpoint_at = self._committed + CHECKPOINT_COMMITS
        self._checkpointed = (time.monotonic(), _modified(self._wal))
        work = self._checkpoint_thread.submit(self._checkpoint)
        work.add_done_callback(_log_checkpoint_failure)
        self._checkpointing = work

    def _arm_checkpoint_timer(self) -> None:
        self._checkpoint_timer = asyncio.get_running_loop().call_later(
            CHECKPOINT_INTERVAL, self._checkpoint_if_idle
        )

    def _checkpoint_if_idle(self) -> None:
        """On the loop, every CHECKPOINT_INTERVAL: a checkpoint when none began for as long and
        the log was written since the last began, unless this store is writing (then its
        commits bring the next one)."""
        self._arm_checkpoint_timer()
        began, modified = self._checkpointed
        if (
            not self._write_lock.locked()
            and (self._checkpointing is None or self._checkpointing.done())
            and time.monotonic() - began >= CHECKPOINT_INTERVAL
            and _modified(self._wal) != modified
        ):
            self._start_checkpoint()

    async def _after_checkpoint(self) -> None:
        """Wait, under the write lock, for the checkpoint under way. SQLite writes its log from
        the start again only when a checkpoint has copied all of it; one overtaken by a commit
        has not, and on a busy relay every checkpoint was, so the log grew by every message's
        pages for as long as the load lasted (190-320 MB after 3,200 messages from one session).
        The wait costs this store's writes a checkpoint's copy every CHECKPOINT_COMMITS
        commits; the event loop serves the sessions meanwhile."""
        work = self._checkpointing
        if work is not None and not work.done():
            await asyncio.wait([asyncio.wrap_future(work)])  # a failure is logged, not raised
        self._checkpointing = None

    def _checkpoint(self) -> None:
        """Copy the log into the database file, and see that the next commit writes the log
        from its start (RESTART: the delivery process's writes wait meanwhile, as this store's
        do); on the checkpoint thread."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self._path, timeout=CHECKPOINT_WAIT, isolation_level=None, check_same_thread=False
            )
        self._checkpointer.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    # --- plumbing --------------------------------------------------------------------------

    async def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = await self._on_writer(self._writer.connect)
            self._identity = _identity(self._path)
            if self._checkpoints:
                self._arm_checkpoint_timer()
        return self._conn

    def _check_file(self) -> None:
        """Refuse to write when the path no longer names the file the writer has open: a stat,
        a few microseconds per transaction."""
        if self._identity is None or _identity(self._path) != self._identity:
            raise StoreError(
                f"the SQLite database file {self._path.name} was deleted or replaced while the "
                "relay had it open; new mail is refused until the relay is restarted"
            )

    def _on_writer(self, fn: Callable[..., T], *args: Any) -> ThreadWork[T]:
        """`fn(*args)` on the writer thread; a caller cancelled meanwhile still waits for it to
        end (`ThreadWork`), so the connection is never used by two threads at once."""
        loop = asyncio.get_running_loop()
        result: ThreadWork[T] = ThreadWork(loop=loop)

        def finished(work: concurrent.futures.Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(result.take, work)

        self._write_thread.submit(fn, *args).add_done_callback(finished)
        return result

    def _shutdown(self) -> None:
        self._write_thread.shutdown(wait=True)
        self._checkpoint_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        if self._wal_fd is not None:
            os.close(self._wal_fd)
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._conn is not None:
            self._conn.close()
        self._writer.dispose()
        self._reader.dispose()


class ThreadWork(asyncio.Future[T]):
    """The result of work running on a thread, which cannot be taken back: a task awaiting it
    that is cancelled keeps waiting until the work has ended, and then sees its cancellation
    (asyncio cancels a task whose awaited future refuses to be cancelled at its next step).
    Unlike `asyncio.shield`, it costs no extra turn of the event loop on the way back."""

    def cancel(self, msg: Any | None = None) -> bool:
        return False

    def take(self, work: concurrent.futures.Future[T]) -> None:
        """Copy the thread's outcome (on the event loop)."""
        exception = work.exception()
        if exception is not None:
            self.set_exception(exception)
        else:
            self.set_result(work.result())


_datasync = getattr(os, "fdatasync", os.fsync)
"""fdatasync, as SQLite's own FULL does on Linux (the log's data, and its size when it grew)."""


def _identity(path: os.PathLike[str] | str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _modified(path: os.PathLike[str] | str) -> int | None:
    """The file's modification time in nanoseconds; None when it does not exist."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _log_checkpoint_failure(work: concurrent.futures.Future[None]) -> None:
    if not work.cancelled() and work.exception() is not None:  # the next one tries again
        logger.warning("store checkpoint failed: %s", work.exception())


def _driver(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


async def _begin_soon(driver: sqlite3.Connection, polls: int) -> bool:
    """`BEGIN IMMEDIATE` on the event loop, trying `polls` more times, a turn of the loop apart,
    while another process holds the write lock. False (nothing begun) if it still does."""
    for _ in range(polls):
        if _begin_at_once(driver):
            return True
        await asyncio.sleep(BUSY_POLL)
    return _begin_at_once(driver)


def _begin_polling(driver: sqlite3.Connection, polls: int) -> bool:
    """`_begin_soon` on a thread: BUSY_POLL apart."""
    for _ in range(polls):
        if _begin_at_once(driver):
            return True
        time.sleep(BUSY_POLL)
    return _begin_at_once(driver)


def _begin_at_once(driver: sqlite3.Connection) -> bool:
    """`BEGIN IMMEDIATE` without waiting: False (and nothing begun) if another process holds
    the write lock."""
    driver.execute("PRAGMA busy_timeout = 0")
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            return False
        raise
    finally:
        driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return True


def _transaction(
    conn: Connection, driver: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]
) -> T:
    """`fn` in the transaction just begun on the driver, then COMMIT; on any error, ROLLBACK, so
    the connection is left with no transaction open."""
    transaction = conn.begin()  # SQLAlchemy's bookkeeping; the driver's BEGIN was ours
    try:
        result = fn(conn, *args)
        transaction.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            transaction.rollback()
        if driver.in_transaction:
            with contextlib.suppress(Exception):
                driver.rollback()
        raise
    return result


def _in_transaction(engine: Engine, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    with engine.begin() as conn:
        return fn(conn, *args)


def _engine(target: Target, *, writer: bool, read_cache: int = READ_CACHE) -> Engine:
    # The writer: one connection, used by one thread at a time (the event loop or the writer
    # thread, in turn under the write lock). Readers: one connection per reader thread.
    # check_same_thread is off for that hand-over, and so that dispose() may close connections
    # from another thread once the threads are idle.
    pool: dict[str, Any] = (
        {"poolclass": StaticPool}
        if writer
        else {"poolclass": SingletonThreadPool, "pool_size": READ_THREADS}
    )
    engine = create_engine(target.url, connect_args={"check_same_thread": False}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: BEGIN is emitted explicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # the fsync after commit is `sync()`
        if writer:
            cursor.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints are `_checkpoint()`
            cursor.execute(f"PRAGMA journal_size_limit = {LOG_SIZE_LIMIT}")
        else:
            cursor.execute(f"PRAGMA cache_size = -{max(read_cache // 1024, 1)}")
        cursor.execute("PRAGMA foreign_keys = OFF")
        cursor.close()

    if not writer:  # the writer emits its own BEGIN IMMEDIATE

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine
