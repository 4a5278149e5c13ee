"""Opening the store: SQLite (WAL, fsync at commit) or PostgreSQL, migrations, the lock.

`open_store()` is the one entry point: it turns `MXRELAY_DATABASE_URL` into SQLAlchemy engines,
applies the Alembic migrations (unless told not to), and, for SQLite, takes a lock file beside the
database so that a second relay on the same file is refused with a clear message (several replicas need
PostgreSQL). The returned `Database` runs work in transactions: `write(fn)` for changes, `read(fn)`
for queries, where `fn` is a plain function of a SQLAlchemy `Connection`. Everything above this
module (log, queue, retention, search) receives a `Database` and never builds an engine.

SQLite has one writer at a time. Inside the process every write goes through one connection,
taken in turn (an asyncio lock), whose transactions open with `BEGIN IMMEDIATE`, so writes queue
in order instead of polling SQLite's busy handler. The group committer's batches
(`write_batch`) run their statements on the event loop and only the commit, which waits for the
disk, on the store's writer thread: in a thread, each of the many statements of a batch handed
the interpreter lock back and forth with the busy event loop, and a batch took several times its
own work to finish. Other writes run wholly on the writer thread, and so does a batch when another
process (the `mxrelay queue` command) holds the write lock, which it then waits for on
`busy_timeout`. Readers have their own threads and never wait for the writer (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import TextClause, create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import SingletonThreadPool, StaticPool

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a write from another process (the CLI) waits for the relay's write to end."""

READ_THREADS = 4

T = TypeVar("T")


class Dialect(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class StoreError(Exception):
    """The store cannot be used (unreachable, locked, read-only, full, not migrated)."""


class StoreLocked(StoreError):
    """Another process holds the SQLite database."""


class SchemaOutdated(StoreError):
    """The database has not been upgraded to this version's schema."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives: the dialect, the async driver URL, and (SQLite) the file."""

    dialect: Dialect
    url: URL
    path: Path | None = None


def parse_database_url(text: str) -> Target:
    """`sqlite:///relative.db`, `sqlite:////abs.db`, `postgresql://user:pw@host:port/db`."""
    try:
        url = make_url(text)
    except Exception as exc:  # sqlalchemy raises ArgumentError; keep the message free of secrets
        raise StoreError("MXRELAY_DATABASE_URL is not a database URL") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreError(
                "MXRELAY_DATABASE_URL: SQLite needs a file (sqlite:///path/to/file.db)"
            )
        path = Path(url.database)
        return Target(Dialect.SQLITE, url.set(drivername="sqlite+pysqlite"), path)
    if backend in ("postgresql", "postgres"):
        return Target(Dialect.POSTGRESQL, url.set(drivername="postgresql+asyncpg"))
    raise StoreError(f"MXRELAY_DATABASE_URL: unsupported database {backend!r}")


def load_queries(dialect: Dialect) -> dict[str, str]:
    """Named queries from `sql/<dialect>.sql`: each under a `-- name: <name>` line."""
    text = resources.files("mxrelay.store").joinpath("sql", f"{dialect.value}.sql").read_text()
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name:"):
            if name is not None:
                queries[name] = "\n".join(lines).strip()
            name, lines = line.removeprefix("-- name:").strip(), []
        elif name is not None and not line.startswith("--"):
            lines.append(line)
    if name is not None:
        queries[name] = "\n".join(lines).strip()
    return queries


class SqliteLock:
    """An exclusive `flock` on `<database>.lock`; the kernel drops it when the process dies, so a
    crash (even SIGKILL) never leaves a stale lock behind, unlike a PID file."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"the SQLite database {self.path.with_suffix('').name!s} is in use by another "
                f"mxrelay process (pid {holder}); SQLite serves one relay per file: stop the "
                "other one, give this one its own MXRELAY_DATABASE_URL, or use PostgreSQL for "
                "several replicas"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class Database:
    """An open store. Work is handed in as plain functions of a SQLAlchemy `Connection`:

    `await db.write(fn, *args)` runs `fn(conn, *args)` in one write transaction and returns its
    result once the transaction is committed (fsync included); `await db.read(fn, *args)` runs it in
    a read transaction. `durable=False` marks a write whose loss in a crash only repeats work (a
    claim, a lease renewal, a delivery result that sends a message again): it is committed without
    waiting for the disk (SQLite `synchronous=NORMAL` for that transaction, PostgreSQL
    `synchronous_commit=off`), and becomes durable with the next durable commit. With SQLite,
    writes take the one writer connection in turn and run on the store's writer thread, except
    the statements of `write_batch` (see the module docstring); reads run on a few reader threads
    (WAL readers never block the writer). With PostgreSQL both run on the event loop through
    asyncpg (`AsyncConnection.run_sync`).
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dialect = target.dialect
        self.queries = load_queries(target.dialect)
        self._sql = {name: text(sql) for name, sql in self.queries.items()}

    def sql(self, name: str) -> TextClause:
        """A named query of `sql/<dialect>.sql`."""
        return self._sql[name]

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        raise NotImplementedError

    async def write_batch(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        """`write` for the group committer's batches: many small statements, then one commit.
        With SQLite the statements run on the calling thread (the event loop) and only the
        commit goes to the writer thread; elsewhere it is `write`."""
        return await self.write(fn, *args, durable=durable)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def dispose(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    def __init__(self, target: Target, *, synchronous: str) -> None:
        super().__init__(target)
        self._synchronous = synchronous.upper()
        self._writer = _sqlite_engine(target, synchronous=synchronous, writer=True)
        self._reader = _sqlite_engine(target, synchronous=synchronous, writer=False)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="store-write")
        self._read_threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="store-read")
        self._write_lock = asyncio.Lock()
        self._conn: Connection | None = None

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        async with self._write_lock:
            conn = await self._connection()
            relax = self._relaxed(durable)
            return await to_the_end(self._on_writer(_write, conn, fn, args, relax))

    async def write_batch(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        async with self._write_lock:
            conn = await self._connection()
            relax = self._relaxed(durable)
            driver = _driver(conn)
            if not _begin_at_once(driver, relax):
                # Another process writes: wait for it on the writer thread, not on the loop.
                return await to_the_end(self._on_writer(_write, conn, fn, args, relax))
            transaction = conn.begin()
            try:
                result = fn(conn, *args)
            except BaseException:
                _end(driver, relax, transaction.rollback)
                raise
            await to_the_end(self._on_writer(_end, driver, relax, transaction.commit))
            return result

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._read_threads, _in_transaction, self._reader, fn, args
        )

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _relaxed(self, durable: bool) -> bool:
        return not durable and self._synchronous == "FULL"

    async def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = await self._on_writer(self._writer.connect)
        return self._conn

    def _on_writer(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._write_thread, fn, *args)

    def _shutdown(self) -> None:
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
        self._writer.dispose()
        self._reader.dispose()


async def to_the_end(work: Awaitable[T]) -> T:
    """Await work done on the writer thread even if the caller is cancelled meanwhile: the
    connection must not be handed to the next write while a statement or commit still runs."""
    future = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


def _driver(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _begin_at_once(driver: sqlite3.Connection, relax: bool) -> bool:
    """`BEGIN IMMEDIATE` without waiting: False (and nothing begun) if another process holds
    the write lock. `relax`: this transaction commits without an fsync of its own (see
    `Database.write`); the setting changes outside any transaction and is restored by `_end`."""
    if relax:
        driver.execute("PRAGMA synchronous = NORMAL")
    driver.execute("PRAGMA busy_timeout = 0")
    try:
        driver.execute("BEGIN IMMEDIATE")
    except BaseException as exc:
        _restore(driver, relax)
        if (
            isinstance(exc, sqlite3.OperationalError)
            and exc.sqlite_errorcode == sqlite3.SQLITE_BUSY
        ):
            return False
        raise
    finally:
        driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return True


def _write(conn: Connection, fn: Callable[..., T], args: tuple[object, ...], relax: bool) -> T:
    """One whole write transaction on the writer thread (waiting for another process's lock)."""
    driver = _driver(conn)
    if relax:
        driver.execute("PRAGMA synchronous = NORMAL")
    try:
        driver.execute("BEGIN IMMEDIATE")
    except BaseException:
        _restore(driver, relax)
        raise
    transaction = conn.begin()
    try:
        result = fn(conn, *args)
    except BaseException:
        _end(driver, relax, transaction.rollback)
        raise
    _end(driver, relax, transaction.commit)
    return result


def _end(driver: sqlite3.Connection, relax: bool, finish: Callable[[], None]) -> None:
    """Commit or roll back (SQLAlchemy's bookkeeping and the driver's transaction), and leave the
    connection with no transaction open and its durability setting restored."""
    try:
        finish()
    except BaseException:
        with contextlib.suppress(Exception):
            driver.rollback()
        raise
    finally:
        _restore(driver, relax)


def _restore(driver: sqlite3.Connection, relax: bool) -> None:
    if driver.in_transaction:
        with contextlib.suppress(Exception):
            driver.rollback()
    if relax:
        driver.execute("PRAGMA synchronous = FULL")


class PostgresDatabase(Database):
    def __init__(self, target: Target, *, pool_size: int) -> None:
        super().__init__(target)
        self._engine = create_async_engine(target.url, pool_size=pool_size, max_overflow=pool_size)

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        async with self._engine.begin() as conn:
            if not durable:
                await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            return await conn.run_sync(fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._engine.connect() as conn:
            return await conn.run_sync(fn, *args)

    async def dispose(self) -> None:
        await self._engine.dispose()


def _in_transaction(engine: Engine, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    with engine.begin() as conn:
        return fn(conn, *args)


def _sqlite_engine(target: Target, *, synchronous: str, writer: bool) -> Engine:
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
        # The driver must not open transactions on its own: we emit BEGIN ourselves below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys = OFF")
        cursor.close()

    if not writer:  # the writer emits its own BEGIN IMMEDIATE (see `_write`, `_begin_at_once`)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine


def _select_one(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1")


def _refuse_outdated(conn: Connection) -> None:
    from mxrelay.store.migrate import current_is_head

    if not current_is_head(conn):
        raise SchemaOutdated(
            "the database schema is not this version's: run `mxrelay db upgrade` "
            "(or start the relay, which upgrades it)"
        )


@contextlib.asynccontextmanager
async def open_store(
    database_url: str,
    *,
    synchronous: str = "full",
    migrate: bool = True,
    exclusive: bool = True,
    check_schema: bool = True,
    pool_size: int = 10,
) -> AsyncIterator[Database]:
    """Open the store; on leaving, close its engines (and release the SQLite lock).

    `exclusive` takes the SQLite lock (the relay and `db upgrade` do; the `queue` command, which
    works beside a running relay, does not). `migrate` applies pending migrations; without it, a
    database that is not at this version's schema is refused (unless `check_schema` is off).
    """
    target = parse_database_url(database_url)
    lock: SqliteLock | None = None
    db: Database
    if target.dialect is Dialect.SQLITE:
        assert target.path is not None
        try:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                lock = SqliteLock(target.path)
                lock.acquire()
        except OSError as exc:
            raise StoreError(f"cannot open the store: {exc.filename}: {exc.strerror}") from None
        db = SqliteDatabase(target, synchronous=synchronous)
    else:
        db = PostgresDatabase(target, pool_size=pool_size)
    try:
        try:
            if migrate:
                from mxrelay.store.migrate import upgrade  # Alembic only when it is needed

                await db.write(upgrade)
            elif check_schema:
                await db.read(_refuse_outdated)
            else:
                await db.read(_select_one)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open the store: {_reason(exc)}") from None
        yield db
    finally:
        await db.dispose()
        if lock is not None:
            lock.release()


def _reason(exc: BaseException) -> str:
    """The driver's own words, first line only (never SQL text or parameters)."""
    orig = getattr(exc, "orig", None)
    base = orig if isinstance(orig, BaseException) else exc
    text = str(base).splitlines()[0] if str(base) else ""
    return f"{type(base).__name__}: {text}"[:300] if text else type(base).__name__
