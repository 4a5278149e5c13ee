"""The PostgreSQL store's group-commit connections: every batch goes on a connection kept
between batches (one for each way a batch commits), and one that is lost, or fails in any way,
is given up for another without failing more than its own write."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.store.commit import GroupCommitter, StoreUnavailable
from mxrelay.store.open import open_store
from tests.support.polling import until
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres


def backend(conn: Connection, items: Sequence[str]) -> list[int]:
    """The server process of the connection the batch ran on."""
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return [int(pid)] * len(items)


def refused(conn: Connection, items: Sequence[str]) -> None:
    conn.execute(text("SELECT 1 / 0"))


def terminated(conn: Connection, items: Sequence[str]) -> None:
    """The server ends the connection in the middle of the batch."""
    conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


async def gone(server: PostgresServer, pid: int) -> None:
    """Until the server process `pid` has exited, and a moment more for the client to read the
    end of its socket."""

    async def exited() -> bool:
        listed = await asyncio.to_thread(
            server.sql, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        )
        return listed == "0"

    await until(exited, what=f"server process {pid} gone")
    await asyncio.sleep(0.2)


async def test_one_statement_batches_keep_their_connection(postgres_url: str) -> None:
    """Durable ones alone and ones that need not reach the disk each keep one connection, and a
    write that fails leaves the next one a working connection."""
    async with open_store(postgres_url) as db, GroupCommitter(db) as committer:
        durable = [await committer.submit(backend, "x", one_statement=True) for _ in range(3)]
        relaxed = [
            await committer.submit(backend, "x", one_statement=True, durable=False)
            for _ in range(3)
        ]
        assert len(set(durable)) == 1
        assert len(set(relaxed)) == 1
        assert durable[0] != relaxed[0]
        with pytest.raises(StoreUnavailable):
            await committer.submit(refused, "x", one_statement=True)
        assert await committer.submit(backend, "x", one_statement=True) > 0


async def test_a_connection_the_server_ends_is_replaced_before_the_next_batch(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """As after a restart or a fail-over: no batch fails for it (the pool did the same by
    throwing away every connection older than the first one found lost)."""
    async with open_store(postgres_url) as db, GroupCommitter(db) as committer:
        for durable in (True, True, True, False, False, False):  # each given back to its pool
            first = await committer.submit(backend, "x", one_statement=True, durable=durable)
            await asyncio.to_thread(postgres_server.sql, f"SELECT pg_terminate_backend({first})")
            await gone(postgres_server, first)
            again = await committer.submit(backend, "x", one_statement=True, durable=durable)
            assert again != first


async def test_a_connection_lost_in_a_batch_fails_that_batch_alone(postgres_url: str) -> None:
    async with open_store(postgres_url) as db, GroupCommitter(db) as committer:
        first = await committer.submit(backend, "x", one_statement=True)
        with pytest.raises(StoreUnavailable):
            await committer.submit(terminated, "x", one_statement=True)
        assert await committer.submit(backend, "x", one_statement=True) != first


async def test_batches_in_a_transaction_keep_their_connection_too(postgres_url: str) -> None:
    """A batch of several writes (its transaction shared) and one with company goes on a kept
    connection of its own, and a failed one rolls back and leaves the next a working one."""
    async with open_store(postgres_url) as db, GroupCommitter(db, window=0.01) as committer:
        rounds = [
            await asyncio.gather(*(committer.submit(backend, str(n)) for n in range(3)))
            for _ in range(3)
        ]
        assert len({pid for pids in rounds for pid in pids}) == 1
        with pytest.raises(StoreUnavailable):
            await committer.submit(refused, "x")
        assert await committer.submit(backend, "x") > 0
