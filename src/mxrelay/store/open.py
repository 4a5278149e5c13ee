"""Opening the store: `MXRELAY_DATABASE_URL` to a backend, the SQLite lock, the migrations.

`open_store(url, mode)` is the one entry point: it turns the URL into a `Database` (`sqlite.py` or
`postgres.py`) and prepares it as its user needs (`OpenMode`): the relay applies the Alembic
migrations and, for SQLite, takes a lock file beside the database, so that a second relay on the
same file is refused with a clear message (several replicas need PostgreSQL).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mxrelay.config import store_url
from mxrelay.store.backend import (
    BadDatabaseUrl,
    Database,
    Dialect,
    SchemaOutdated,
    StoreError,
    StoreLocked,
    Target,
    describe_error,
)
from mxrelay.store.postgres import PostgresDatabase
from mxrelay.store.sqlite import BUSY_POLLS, READ_CACHE, SqliteDatabase


class OpenMode(enum.Enum):
    """Who opens the store; `ACCESS` says what that means."""

    RELAY = "relay"
    """The relay (`mxrelay serve`): the store is its own."""
    UPGRADE = "upgrade"
    """`mxrelay db upgrade`: what the relay does first, and nothing more."""
    DELIVERY = "delivery"
    """The relay's delivery process: the relay's store, which the relay has already upgraded."""
    QUEUE = "queue"
    """`mxrelay queue`: an operator beside a running relay."""
    INSPECT = "inspect"
    """`mxrelay db current`: where the schema stands, whatever it is."""


class Schema(enum.Enum):
    """What opening does with the database's schema."""

    MIGRATE = "migrate"
    """Apply the pending migrations."""
    REQUIRE = "require"
    """Refuse a database that is not at this version's schema (`SchemaOutdated`)."""
    ANY = "any"
    """Take it as it is."""


@dataclass(frozen=True, slots=True)
class Access:
    """What opening the store does for one `OpenMode`."""

    lock: bool
    """Take the SQLite file's lock: one relay per file. Whoever does not lock works beside the
    process that does (the relay's delivery process inherits the relay's lock)."""
    schema: Schema
    inline: bool = False
    """SQLite reads and writes run on the event loop: the delivery process's store, where no SMTP
    client waits on the loop (`sqlite.py`)."""


ACCESS: Mapping[OpenMode, Access] = MappingProxyType(
    {
        OpenMode.RELAY: Access(lock=True, schema=Schema.MIGRATE),
        OpenMode.UPGRADE: Access(lock=True, schema=Schema.MIGRATE),
        OpenMode.DELIVERY: Access(lock=False, schema=Schema.REQUIRE, inline=True),
        OpenMode.QUEUE: Access(lock=False, schema=Schema.REQUIRE),
        OpenMode.INSPECT: Access(lock=False, schema=Schema.ANY),
    }
)


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
    mode: OpenMode = OpenMode.RELAY,
    *,
    synchronous: str = "full",
    read_cache: int = READ_CACHE,
) -> AsyncIterator[Database]:
    """Open the store for `mode`'s user; on leaving, close its engines (and release the SQLite
    lock). `synchronous` is `MXRELAY_STORE_SYNCHRONOUS` (SQLite: whether commits are fsynced),
    `read_cache` `MXRELAY_STORE_SQLITE_READ_CACHE` (SQLite: bytes of each reader's page cache)."""
    access = ACCESS[mode]
    target = parse_database_url(database_url)
    lock: SqliteLock | None = None
    db: Database
    if target.dialect is Dialect.SQLITE:
        assert target.path is not None
        try:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            if access.lock:
                lock = SqliteLock(target.path)
                lock.acquire()
        except OSError as exc:
            raise StoreError(f"cannot open the store: {exc.filename}: {exc.strerror}") from None
        polls = BUSY_POLLS if access.lock else 0  # the relay's own sessions are waiting
        db = SqliteDatabase(
            target,
            synchronous=synchronous,
            busy_polls=polls,
            inline=access.inline,
            checkpoints=access.lock,
            read_cache=read_cache,
        )
        if lock is not None and lock.fileno is not None:
            db.child_fds = (lock.fileno,)
    else:
        db = PostgresDatabase(target)
    try:
        try:
            await _prepare(db, access.schema)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open the store: {describe_error(exc)}") from None
        yield db
    finally:
        await db.dispose()
        if lock is not None:
            lock.release()


async def _prepare(db: Database, schema: Schema) -> None:
    if schema is Schema.MIGRATE:
        from mxrelay.store.migrate import upgrade  # Alembic only when it is needed

        async with db.migration_lock():
            await db.write(upgrade)
    elif schema is Schema.REQUIRE:
        await db.read(_refuse_outdated)
    else:
        await db.read(_select_one)
