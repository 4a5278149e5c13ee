"""Opening the store: SQLite (WAL, fsync at commit) or PostgreSQL, migrations, the lock.

`open_store()` is the one entry point: it turns `MXRELAY_DATABASE_URL` into SQLAlchemy engines,
applies the Alembic migrations (unless told not to), and, for SQLite, takes a lock file beside the
database so that a second relay on the same file is refused with a clear message (several replicas need
PostgreSQL). The returned `Database` runs work in transactions: `write(fn)` for changes, `read(fn)`
for queries, where `fn` is a plain function of a SQLAlchemy `Connection`. Everything above this
module (log, queue, retention, search) receives a `Database` and never builds an engine.

SQLite has one writer at a time. Inside the process every write runs on one writer thread whose
connection opens its transactions with `BEGIN IMMEDIATE`, so writes queue in order instead of
polling SQLite's busy handler, and a group commit of many messages crosses between the event loop
and that thread once (an async driver would cross once per statement, each time waiting for the
GIL). Readers have their own threads and never wait for the writer (WAL). Another process (the
`mxrelay queue` command) waits on `busy_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import functools
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import TextClause, create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import SingletonThreadPool

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
    `synchronous_commit=off`), and becomes durable with the next durable commit. With SQLite the functions run on the store's own threads: one writer thread
    (so writes never wait on SQLite's busy handler and a whole batch costs one hand-over between
    threads, not one per statement) and a few reader threads (WAL readers never block the writer).
    With PostgreSQL they run on the event loop through asyncpg (`AsyncConnection.run_sync`).
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

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        if durable or self._synchronous != "FULL":
            run = functools.partial(_in_transaction, self._writer, fn, args)
        else:
            run = functools.partial(_relaxed, self._writer, fn, args)
        return await asyncio.get_running_loop().run_in_executor(self._write_thread, run)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._read_threads, _in_transaction, self._reader, fn, args
        )

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self._writer.dispose()
        self._reader.dispose()


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


def _relaxed(engine: Engine, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    """A write transaction committed without its own fsync (WAL with synchronous=NORMAL); the
    setting is changed on the driver connection, outside any transaction, and restored."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA synchronous = NORMAL")
        try:
            with conn.begin():
                return fn(conn, *args)
        finally:
            driver.execute("PRAGMA synchronous = FULL")


def _sqlite_engine(target: Target, *, synchronous: str, writer: bool) -> Engine:
    # One connection per thread (the writer has one thread; readers a few); check_same_thread is
    # off only so that dispose() may close them from another thread once the threads are idle.
    engine = create_engine(
        target.url,
        poolclass=SingletonThreadPool,
        pool_size=1 if writer else READ_THREADS,
        connect_args={"check_same_thread": False},
    )

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

    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

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
