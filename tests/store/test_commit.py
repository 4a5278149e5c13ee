"""Group commit on SQLite and PostgreSQL: writes of several kinds share one transaction, each caller
gets its own result, and a failed transaction fails every write in it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.store.commit import GroupCommitter, StoreUnavailable
from mxrelay.store.db import Database

T = TypeVar("T")


def tag(conn: Connection, items: Sequence[str]) -> list[str]:
    conn.execute(
        text("INSERT INTO message_tags (message_id, tag) VALUES (:m, :t)"),
        [{"m": item, "t": "a"} for item in items],
    )
    return [f"tagged {item}" for item in items]


def untag(conn: Connection, items: Sequence[str]) -> None:
    conn.execute(text("DELETE FROM message_tags WHERE message_id = :m"), [{"m": i} for i in items])


def broken(conn: Connection, items: Sequence[str]) -> None:
    conn.execute(text("INSERT INTO no_such_table VALUES (1)"))


async def tags(db: Database) -> list[str]:
    rows = await db.read(lambda c: c.execute(text("SELECT message_id FROM message_tags")).all())
    return sorted(r[0] for r in rows)


async def test_kinds_share_a_transaction_and_results_go_to_their_callers(db: Database) -> None:
    metrics = Metrics()
    async with GroupCommitter(db, window=0.01, metrics=metrics) as committer:
        results = await asyncio.gather(
            committer.submit(tag, "m1"),
            committer.submit(untag, "m0"),
            committer.submit(tag, "m2", durable=False),
            committer.submit(tag, "m3"),
        )
    assert list(results) == ["tagged m1", None, "tagged m2", "tagged m3"]
    assert await tags(db) == ["m1", "m2", "m3"]
    assert metrics.registry.get_sample_value("mxrelay_store_commit_batch_size_count") == 1


async def test_a_failed_transaction_fails_every_write_in_it(db: Database) -> None:
    health = Health()
    async with GroupCommitter(db, window=0.01, health=health) as committer:
        outcomes = await asyncio.gather(
            committer.submit(tag, "m1"), committer.submit(broken, "x"), return_exceptions=True
        )
        assert all(isinstance(o, StoreUnavailable) for o in outcomes)
        assert "store" in health.failing()
        assert await tags(db) == []  # nothing of the batch was kept
        assert await committer.submit(tag, "m2") == "tagged m2"  # the next batch works again
        assert health.failing() == {}


async def test_writes_after_close_are_refused(db: Database) -> None:
    committer = GroupCommitter(db)
    async with committer:
        await committer.submit(tag, "m1")
    with pytest.raises(StoreUnavailable, match="closing"):
        await committer.submit(tag, "m2")


class HeldSyncs(Database):
    """The store, with each batch's fsync held until the test lets it go: what the committer
    does while earlier batches wait for the disk."""

    def __init__(self, inner: Database) -> None:
        super().__init__(inner.target)
        self.inner = inner
        self.written: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        return await self.inner.write(fn, *args, durable=durable)

    async def write_batch(
        self, fn: Callable[..., T], *args: Any, durable: bool = True
    ) -> tuple[T, Awaitable[None] | None]:
        result = await self.inner.write(fn, *args, durable=durable)
        sync: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.written.put_nowait(sync)
        return result, sync

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.inner.read(fn, *args)

    async def next_batch(self) -> asyncio.Future[None]:
        """The fsync of the next batch written."""
        async with asyncio.timeout(5):
            return await self.written.get()


async def test_batches_are_written_while_earlier_ones_wait_for_the_disk(db: Database) -> None:
    held = HeldSyncs(db)
    health = Health()
    async with GroupCommitter(held, window=0.0, health=health) as committer:
        first = asyncio.ensure_future(committer.submit(tag, "m1"))
        sync1 = await held.next_batch()
        second = asyncio.ensure_future(committer.submit(tag, "m2"))
        sync2 = await held.next_batch()  # written before the first is on disk
        assert await tags(db) == ["m1", "m2"]
        third = asyncio.ensure_future(committer.submit(tag, "m3"))
        await asyncio.sleep(0.02)
        assert held.written.empty()  # at most UNSYNCED_BATCHES wait for the disk
        assert not first.done()  # nobody is answered before their fsync
        assert not second.done()
        sync2.set_result(None)
        assert await second == "tagged m2"
        assert not first.done()
        sync3 = await held.next_batch()
        sync1.set_exception(OSError(5, "Input/output error"))
        with pytest.raises(StoreUnavailable, match="Input/output error"):
            await first
        assert "store" in health.failing()
        sync3.set_result(None)
        assert await third == "tagged m3"
