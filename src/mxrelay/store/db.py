"""Opening the store: SQLite (`sqlite.py`) or PostgreSQL, migrations, the lock.

`open_store()` is the one entry point: it turns `MXRELAY_DATABASE_URL` into SQLAlchemy engines,
applies the Alembic migrations (unless told not to), and, for SQLite, takes a lock file beside the
database so that a second relay on the same file is refused with a clear message (several replicas need
PostgreSQL). The returned `Database` runs work in transactions: `write(fn)` for changes, `read(fn)`
for queries, where `fn` is a plain function of a SQLAlchemy `Connection`. Everything above this
module (log, queue, retention, search) receives a `Database` and never builds an engine.

With SQLite, writes share one connection and batches are made durable by an fsync of their own
(`sqlite.py`); with PostgreSQL, work runs on the event loop through asyncpg.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from mxrelay.config.values import store_url

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


class BadDatabaseUrl(StoreError):
    """`MXRELAY_DATABASE_URL` is not a URL of a store this version can open (a configuration
    error: the settings check it before anything starts)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"MXRELAY_DATABASE_URL {problem}")
        self.problem = problem
        """What is wrong, as a phrase after the value ("is not a database URL")."""


def parse_database_url(text: str) -> Target:
    """`sqlite:///relative.db`, `sqlite:////abs.db`, `postgresql://user:pw@host:port/db`."""
    try:
        url = store_url(text)
    except ValueError as exc:
        raise BadDatabaseUrl(str(exc)) from None
    if url.get_backend_name() == "sqlite":
        assert url.database is not None  # store_url refuses a SQLite URL without a file
        return Target(Dialect.SQLITE, url.set(drivername="sqlite+pysqlite"), Path(url.database))
    return Target(Dialect.POSTGRESQL, url.set(drivername="postgresql+asyncpg"))


def load_queries(dialect: Dialect) -> dict[str, str]:
    """Named queries of `dialect`: those of `sql/common.sql`, then those of `sql/<dialect>.sql`
    (the ones that differ between dialects)."""
    sql = resources.files("mxrelay.store").joinpath("sql")
    queries = _named_queries(sql.joinpath("common.sql").read_text())
    queries.update(_named_queries(sql.joinpath(f"{dialect.value}.sql").read_text()))
    return queries


def _named_queries(text: str) -> dict[str, str]:
    """The queries of one file, each under a `-- name: <name>` line."""
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
    crash (even SIGKILL) never leaves a stale lock behind, unlike a PID file.

    The relay's delivery process inherits the descriptor (`Database.child_fds`): the lock is then
    the relay's and its child's, held until both are gone, so a new relay cannot start on the
    file while the old one's child still delivers from it."""

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

    @property
    def fileno(self) -> int | None:
        return self._fd

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
    writes take the one writer connection in turn on the store's writer thread, except the
    statements of `write_batch`, and reads run on a few reader threads (`sqlite.py`). With
    PostgreSQL both run on the event loop through asyncpg (`AsyncConnection.run_sync`).
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dialect = target.dialect
        self.child_fds: tuple[int, ...] = ()
        """Descriptors a child process of the relay inherits to count as part of it (the SQLite
        lock's), set by `open_store`."""
        self.statements: dict[str, TextClause] = {
            name: text(sql) for name, sql in load_queries(target.dialect).items()
        }
        """The named queries (`load_queries`), built once."""

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Held while this process migrates the schema. SQLite: nothing to do, the file's lock
        already keeps other relays out."""
        yield

    async def write_batch(
        self, fn: Callable[..., T], *args: Any, durable: bool = True
    ) -> tuple[T, Awaitable[None] | None]:
        """`write` for the group committer's batches: `fn`'s result once the transaction is
        committed, and, if that commit is not on disk yet, an awaitable that completes once it
        is (or raises if it cannot be). With SQLite the statements run on the event loop and
        the fsync on the writer thread while the next batch is written (`sqlite.py`); with
        PostgreSQL it is `write`."""
        return await self.write(fn, *args, durable=durable), None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def dispose(self) -> None:
        raise NotImplementedError


MIGRATION_LOCK = -814038290092966855
"""The PostgreSQL advisory lock key that serialises schema migrations between processes (the
first 8 bytes of SHA-256("mxrelay schema migration"), as a signed 64-bit integer)."""


class PostgresDatabase(Database):
    def __init__(self, target: Target, *, pool_size: int) -> None:
        super().__init__(target)
        self._engine = create_async_engine(target.url, pool_size=pool_size, max_overflow=pool_size)

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Held while this process migrates: replicas starting together on a fresh database
        would otherwise both create the tables, and one would die on a duplicate. A session
        lock on a connection of its own, taken before the migration's transaction begins and
        released after it commits (a transaction-level lock would end at the first commit,
        and a migration may commit more than once: `autocommit_block`)."""
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                await conn.commit()

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
    inline: bool = False,
) -> AsyncIterator[Database]:
    """Open the store; on leaving, close its engines (and release the SQLite lock).

    `exclusive` takes the SQLite lock (the relay and `db upgrade` do; the `queue` command, which
    works beside a running relay, does not). `migrate` applies pending migrations; without it, a
    database that is not at this version's schema is refused (unless `check_schema` is off).
    `inline`: SQLite reads and writes run on the event loop (the delivery process's store, see
    `sqlite.py`).
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
        from mxrelay.store.sqlite import BUSY_POLLS, SqliteDatabase  # it builds on this module

        polls = BUSY_POLLS if exclusive else 0  # the relay's own sessions are waiting
        db = SqliteDatabase(target, synchronous=synchronous, busy_polls=polls, inline=inline)
        if lock is not None and lock.fileno is not None:
            db.child_fds = (lock.fileno,)
    else:
        db = PostgresDatabase(target, pool_size=pool_size)
    try:
        try:
            if migrate:
                from mxrelay.store.migrate import upgrade  # Alembic only when it is needed

                async with db.migration_lock():
                    await db.write(upgrade)
            elif check_schema:
                await db.read(_refuse_outdated)
            else:
                await db.read(_select_one)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open the store: {describe_error(exc)}") from None
        yield db
    finally:
        await db.dispose()
        if lock is not None:
            lock.release()


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """The driver's own words, first line only (never SQL text or parameters, which may carry
    addresses), at most `limit` characters."""
    orig = getattr(exc, "orig", None)
    base = orig if isinstance(orig, BaseException) else exc
    text = str(base).splitlines()[0] if str(base) else ""
    return f"{type(base).__name__}: {text}"[:limit] if text else type(base).__name__
