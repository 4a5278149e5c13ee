"""The store on PostgreSQL: work runs on the event loop through asyncpg, replicas share the queue.

Reads and writes take a connection of the pool (`AsyncConnection.run_sync`); a write that need not
wait for the disk (`durable=False`) commits with `synchronous_commit = off`. The group committer's
batches go on connections kept between batches (`write_batch`, `HeldConnection`); a batch that is
one statement runs as its own transaction, if durable only when alone.
Replicas starting together migrate one after the other, under an advisory lock
(`migration_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mxrelay.store.backend import Database, Target

T = TypeVar("T")

POOL_SIZE = 10
"""Connections a process keeps open (and opens as many again at a peak)."""

MIGRATION_LOCK = -814038290092966855
"""The PostgreSQL advisory lock key that serialises schema migrations between processes (the
first 8 bytes of SHA-256("mxrelay schema migration"), as a signed 64-bit integer)."""


class PostgresDatabase(Database):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._engine = create_async_engine(target.url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)
        self._transactions = HeldConnection(self._engine)
        """A connection of the pool for the group committer's other batches (`write_batch`)."""
        self._autocommit = HeldConnection(
            self._engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        """A connection of the same pool, without a transaction (`write_batch`)."""
        self._unsynced_engine = create_async_engine(
            target.url, pool_size=1, max_overflow=1, isolation_level="AUTOCOMMIT"
        )
        event.listen(self._unsynced_engine.sync_engine, "connect", _not_waiting_for_the_disk)
        self._unsynced = HeldConnection(self._unsynced_engine)
        """A connection whose every statement commits on its own without waiting for the disk,
        for a batch of one statement not `durable` (`write_batch`): opened when first used, and
        one suffices, a process's group committer writing one batch at a time."""

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
        async with self._engine.connect() as conn:
            return await conn.run_sync(_in_transaction, fn, args, durable)

    async def write_batch(
        self,
        fn: Callable[..., T],
        *args: Any,
        durable: bool = True,
        alone: bool = False,
        one_statement: bool = False,
    ) -> tuple[T, Awaitable[None] | None]:
        """A batch that is `one_statement` runs outside a transaction: PostgreSQL commits the
        statement as its own, in one round trip instead of three (BEGIN, the statement, COMMIT),
        atomic all the same. Not `durable`: on a connection that does not wait for the disk
        (one round trip instead of `write`'s four, its `SET LOCAL` included). Durable: only
        `alone`, where a session waits for those round trips; committing every such batch so
        measured slower at 20 sessions, for reasons not found (docs/architecture/store.md)."""
        if one_statement and not durable:
            return await self._unsynced.run(fn, *args), None
        if one_statement and alone:
            return await self._autocommit.run(fn, *args), None
        return await self._transactions.run(_in_transaction, fn, args, durable), None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._engine.connect() as conn:
            return await conn.run_sync(fn, *args)

    async def dispose(self) -> None:
        await self._transactions.close()
        await self._autocommit.close()
        await self._unsynced.close()
        await self._engine.dispose()
        await self._unsynced_engine.dispose()


class HeldConnection:
    """A connection of `engine`'s pool kept between writes, for the group committer: taking a
    connection from the pool and giving it back costs more than SQLAlchemy's and asyncpg's work
    for the statement itself (about 70 µs of the process's CPU per batch, measured, and a turn of
    the event loop for the return, on the path of a session waiting for its 250). Writes take
    turns on it. One the server has closed meanwhile is given up before the next write; after a
    write that fails in any way it goes back to the pool, which resets it or, lost, discards it;
    either way the next write takes another."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._turn = asyncio.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._turn:
            conn, self._conn = self._conn, None
            if conn is not None and _closed_by_the_server(conn):
                with contextlib.suppress(Exception):  # nothing to reset: back to the pool as lost
                    await conn.invalidate()
                    await conn.close()
                conn = None
            if conn is None:
                conn = await self._engine.connect()
            try:
                result = await conn.run_sync(fn, *args)
            except BaseException:
                with contextlib.suppress(Exception):  # the write's own error is the one to tell
                    await conn.close()
                raise
            self._conn = conn
            return result

    async def close(self) -> None:
        async with self._turn:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()


def _closed_by_the_server(conn: AsyncConnection) -> bool:
    """Whether the server ended the connection while it was kept (a restart, a fail-over, an
    administrator): asyncpg reads the socket's end even while no statement runs. Seen before the
    next batch, so that batch takes another connection rather than fail; the pool, which lends
    out connections already closed in the same way, did so by throwing away every connection
    older than the first one found lost (SQLAlchemy invalidates a pool on a disconnect)."""
    sync = conn.sync_connection
    driver = sync.connection.driver_connection if sync is not None else None
    return driver is None or bool(driver.is_closed())


def _in_transaction(
    conn: Connection, fn: Callable[..., T], args: tuple[Any, ...], durable: bool
) -> T:
    """`fn` in a transaction of its own; not `durable`: one whose commit does not wait for the
    disk."""
    with conn.begin():
        if not durable:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        return fn(conn, *args)


def _not_waiting_for_the_disk(connection: Any, record: Any) -> None:
    """A new connection's commits do not wait for the disk: a `SET` once per connection, not a
    startup parameter, which connection poolers such as PgBouncer refuse by default. Committed
    in case the driver began a transaction for it (a later rollback would undo the `SET`)."""
    cursor = connection.cursor()
    cursor.execute("SET synchronous_commit = off")
    cursor.close()
    connection.commit()
