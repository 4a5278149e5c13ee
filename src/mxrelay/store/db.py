"""Opening the store: engines for SQLite (WAL, fsync at commit) or PostgreSQL, migrations, the lock.

`open_store()` is the one entry point: it turns `MXRELAY_DATABASE_URL` into SQLAlchemy async engines,
applies the Alembic migrations (unless told not to), and, for SQLite, takes a lock file beside the
database so that a second relay on the same file is refused with a clear message (several replicas need
PostgreSQL). The returned `Database` hands out transactions: `write()` for changes, `read()` for
queries. Everything above this module (log, queue, retention, search) receives a `Database` and never
builds an engine.

SQLite has one writer at a time. Inside the process, writes are serialised by an asyncio lock around
one connection that opens its transactions with `BEGIN IMMEDIATE`, so writers queue in the event loop
instead of polling SQLite's busy handler; readers use their own pool and never wait for the writer
(WAL). Another process (the `mxrelay queue` command) waits on `busy_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a write from another process (the CLI) waits for the relay's write to end."""

READ_POOL_SIZE = 4


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
        return Target(Dialect.SQLITE, url.set(drivername="sqlite+aiosqlite"), path)
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
    """Engines and transactions of an open store. Created by `open_store()`."""

    def __init__(
        self, target: Target, writer: AsyncEngine, reader: AsyncEngine, *, serialise: bool
    ) -> None:
        self.target = target
        self.dialect = target.dialect
        self.queries = load_queries(target.dialect)
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock() if serialise else None

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, committed (fsync included) when the block ends."""
        if self._write_lock is None:
            async with self._writer.begin() as conn:
                yield conn
            return
        async with self._write_lock, self._writer.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction; on SQLite it sees a consistent snapshot and never blocks writers."""
        async with self._reader.connect() as conn:
            yield conn

    def sql(self, name: str) -> str:
        return self.queries[name]

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


def _sqlite_engine(target: Target, *, synchronous: str, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        target.url,
        pool_size=1 if writer else READ_POOL_SIZE,
        max_overflow=0 if writer else 4,
        pool_pre_ping=False,
    )

    @event.listens_for(engine.sync_engine, "connect")
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

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


async def _migrate(db: Database) -> None:
    from mxrelay.store.migrate import upgrade  # Alembic is imported only when it is needed

    async with db.write() as conn:
        await conn.run_sync(upgrade)


async def _check_schema(db: Database) -> None:
    from mxrelay.store.migrate import current_is_head

    async with db.read() as conn:
        if not await conn.run_sync(current_is_head):
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
    database that is not at this version's schema is refused.
    """
    target = parse_database_url(database_url)
    lock: SqliteLock | None = None
    if target.dialect is Dialect.SQLITE:
        assert target.path is not None
        target.path.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:
            lock = SqliteLock(target.path)
            lock.acquire()
        writer = _sqlite_engine(target, synchronous=synchronous, writer=True)
        reader = _sqlite_engine(target, synchronous=synchronous, writer=False)
        db = Database(target, writer, reader, serialise=True)
    else:
        engine = create_async_engine(target.url, pool_size=pool_size, max_overflow=pool_size)
        db = Database(target, engine, engine, serialise=False)
    try:
        try:
            if migrate:
                await _migrate(db)
            elif check_schema:
                await _check_schema(db)
            else:
                async with db.read() as conn:
                    await conn.exec_driver_sql("SELECT 1")
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
