"""Group commit on SQLite and PostgreSQL: writes of several kinds share one transaction, each caller
gets its own result; a write that fails does so alone, an outage fails every write, and readiness
follows the store (probed while idle), not single writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.bulk import insert_many
from mxrelay.store.commit import GroupCommitter, StoreUnavailable, Writer
from mxrelay.store.open import open_store
from tests.support.polling import until
from tests.support.postgres import PostgresServer

T = TypeVar("T")


def tag(conn: Connection, items: Sequence[str]) -> list[str]:
    conn.execute(
        text("INSERT INTO message_tags (message_id, tag_id) VALUES (:m, :t)"),
        [{"m": item, "t": 1} for item in items],
    )
    return [f"tagged {item}" for item in items]


def untag(conn: Connection, items: Sequence[str]) -> None:
    conn.execute(text("DELETE FROM message_tags WHERE message_id = :m"), [{"m": i} for i in items])


def broken(conn: Connection, items: Sequence[str]) -> None:
    """A write the database refuses for what it writes (a duplicate key), not for its state."""
    row = {"m": "dup", "t": 1}
    conn.execute(text("INSERT INTO message_tags (message_id, tag_id) VALUES (:m, :t)"), [row, row])


def bulk_tag(conn: Connection, items: Sequence[str]) -> list[str]:
    """`tag` through `bulk.insert_many`, which on SQLite hands the rows to the driver itself."""
    insert_many(conn, schema.message_tags, [{"message_id": item, "tag_id": 1} for item in items])
    return [f"tagged {item}" for item in items]


def bulk_broken(conn: Connection, items: Sequence[str]) -> None:
    """`broken` through `bulk.insert_many`."""
    insert_many(conn, schema.message_tags, [{"message_id": "dup", "tag_id": 1}] * 2)


def bulk_bulky(conn: Connection, items: Sequence[str]) -> None:
    """`bulky` through `bulk.insert_many`."""
    row = {"message_id": items[0], "received_at": 0.0, "encoding": "identity"}
    insert_many(conn, schema.message_bodies, [row | {"stored_size": 0, "raw": b"x" * 262144}])


def tag_then_probe(conn: Connection, items: Sequence[str]) -> list[bool]:
    """`tag` in one statement, then whether that statement's transaction has ended: a probe
    (PostgreSQL gives an INSERT's transaction an id, which a later statement of the same
    transaction still has)."""
    conn.execute(
        text("INSERT INTO message_tags (message_id, tag_id) SELECT unnest(CAST(:m AS text[])), 1"),
        {"m": list(items)},
    )
    ended = conn.execute(text("SELECT pg_current_xact_id_if_assigned() IS NULL")).scalar_one()
    return [bool(ended)] * len(items)


def synchronous_commit(conn: Connection, items: Sequence[str]) -> list[str]:
    """The connection's `synchronous_commit`: whether its commits wait for the disk."""
    setting = conn.execute(text("SELECT current_setting('synchronous_commit')")).scalar_one()
    return [str(setting)] * len(items)


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


@pytest.mark.parametrize(("good", "bad"), [(tag, broken), (bulk_tag, bulk_broken)])
async def test_a_write_that_fails_does_so_alone(db: Database, good: Writer, bad: Writer) -> None:
    health = Health()
    metrics = Metrics()
    async with GroupCommitter(db, window=0.01, health=health, metrics=metrics) as committer:
        outcomes = await asyncio.gather(
            committer.submit(good, "m1"),
            committer.submit(bad, "x"),
            committer.submit(good, "m2"),
            return_exceptions=True,
        )
        assert outcomes[0] == "tagged m1"
        assert isinstance(outcomes[1], StoreUnavailable)
        assert outcomes[2] == "tagged m2"
        assert await tags(db) == ["m1", "m2"]
        assert health.failing() == {}  # the store works: one bad write is not an outage
        failures = metrics.registry.get_sample_value("mxrelay_store_commit_failures_total")
        assert failures == 0  # the metric (and its alert) are about the store
        assert await committer.submit(good, "m3") == "tagged m3"


async def test_a_bulk_write_to_a_full_store_is_an_outage(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """The driver's own error (SQLite: unwrapped) is read as the store's fault: readiness goes
    red and the failure is counted, as for statements through SQLAlchemy."""
    health, metrics = Health(), Metrics()
    switch = StoreSwitch(db, request)
    async with GroupCommitter(db, health=health, metrics=metrics, probe_idle=60) as committer:
        await switch.set(working=False)
        with pytest.raises(StoreUnavailable):
            await committer.submit(bulk_bulky, "b1")
        assert "store" in health.failing()
        assert failures(metrics) >= 1
        await switch.set(working=True)


class StoreSwitch:
    """Makes the real store refuse writes, and take them again: SQLite at its page limit (the
    error path of a full disk), PostgreSQL read-only (as after a fail-over to a standby)."""

    def __init__(self, db: Database, request: pytest.FixtureRequest) -> None:
        self.db = db
        self.server: PostgresServer | None = None
        if db.dialect is Dialect.POSTGRESQL:
            self.server = request.getfixturevalue("postgres_server")

    async def set(self, *, working: bool) -> None:
        if self.server is None:
            await self.db.write(_page_limit, None if not working else 1_073_741_823)
            return
        name = self.db.target.url.database
        value = (
            "RESET default_transaction_read_only"
            if working
            else ("SET default_transaction_read_only = on")
        )
        await asyncio.to_thread(self.server.sql, f"ALTER DATABASE {name} {value}")
        await asyncio.to_thread(
            self.server.sql,  # sessions keep what they began with: end them
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )


def _page_limit(conn: Connection, pages: int | None) -> None:
    """The writer connection may grow to `pages` pages (None: no bigger than it is now)."""
    if pages is None:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")


def bulky(conn: Connection, items: Sequence[str]) -> None:
    """A write that needs room (a 256 KiB body)."""
    row = {"m": items[0], "at": 0.0, "raw": b"x" * 256 * 1024}
    conn.execute(
        text(
            "INSERT INTO message_bodies (message_id, received_at, encoding, stored_size, raw) "
            "VALUES (:m, :at, 'identity', 0, :raw)"
        ),
        [row],
    )


def failures(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("mxrelay_store_commit_failures_total") or 0.0


def commits(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("mxrelay_store_commit_batch_size_count") or 0.0


async def test_an_outage_fails_every_write_and_clears_without_traffic(
    db: Database, request: pytest.FixtureRequest
) -> None:
    health, metrics = Health(), Metrics()
    switch = StoreSwitch(db, request)
    committer = GroupCommitter(
        db, window=0.01, health=health, metrics=metrics, probe_idle=60, probe_retry=0.05
    )
    async with committer:
        await switch.set(working=False)
        outcomes = await asyncio.gather(
            committer.submit(tag, "m1"), committer.submit(bulky, "b1"), return_exceptions=True
        )
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert await tags(db) == []
        assert health.failing()["store"].startswith("commits fail: ")
        failed = failures(metrics)
        assert failed >= 1
        await until(lambda: failures(metrics) > failed)  # a probe, failing too
        assert not health.ready  # the probe finds it still failing
        await switch.set(working=True)
        await until(lambda: health.ready)  # the probe clears it; nothing else was written
        assert await committer.submit(tag, "m2") == "tagged m2"


async def test_an_idle_relay_notices_a_store_that_stops_taking_writes(
    db: Database, request: pytest.FixtureRequest
) -> None:
    health, metrics = Health(), Metrics()
    switch = StoreSwitch(db, request)
    async with GroupCommitter(
        db, health=health, metrics=metrics, probe_idle=0.05, probe_retry=0.05
    ):
        await until(lambda: commits(metrics) >= 2)  # two idle probes, written
        assert health.failing() == {}
        await switch.set(working=False)
        await until(lambda: not health.ready)
        await switch.set(working=True)
        await until(lambda: health.ready)


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
        self.alone: list[bool] = []
        """Whether each batch was written as alone."""

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        return await self.inner.write(fn, *args, durable=durable)

    async def write_batch(
        self,
        fn: Callable[..., T],
        *args: Any,
        durable: bool = True,
        alone: bool = False,
        one_statement: bool = False,
    ) -> tuple[T, Awaitable[None] | None]:
        self.alone.append(alone)
        result = await self.inner.write(fn, *args, durable=durable)
        sync: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.written.put_nowait(sync)
        return result, sync

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.inner.read(fn, *args)

    async def dispose(self) -> None:
        """Nothing of its own to close: the inner store is the fixture's."""

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


async def test_a_write_alone_is_told_so_and_one_with_company_is_not(db: Database) -> None:
    """Alone: one write in the batch and no earlier batch waiting for the disk (the store may
    then wait for the disk at once, `Database.write_batch`)."""
    held = HeldSyncs(db)
    async with GroupCommitter(held, window=0.0) as committer:
        first = asyncio.ensure_future(committer.submit(tag, "m1"))
        sync1 = await held.next_batch()
        second = asyncio.ensure_future(committer.submit(tag, "m2"))
        sync2 = await held.next_batch()  # the first still waits for the disk
        sync1.set_result(None)
        sync2.set_result(None)
        await asyncio.gather(first, second)
        together = [asyncio.ensure_future(committer.submit(tag, f"t{n}")) for n in range(3)]
        (await held.next_batch()).set_result(None)
        await asyncio.gather(*together)
    assert held.alone == [True, False, False]


@pytest.mark.postgres
async def test_a_write_alone_that_is_one_statement_commits_as_that_statement(
    postgres_url: str,
) -> None:
    """On PostgreSQL, without BEGIN and COMMIT (one round trip instead of three), when the batch
    is one write that says it is one statement and must reach the disk alone, or need not
    reach it (then on a connection that does not wait for the disk); a durable one with
    company keeps its transaction (why: docs/architecture/store.md)."""
    # The test server does not wait for its disk; this database does, as a real one would.
    name = postgres_url.rsplit("/", 1)[1]
    async with open_store(postgres_url) as db:
        await db.write(
            lambda c: c.exec_driver_sql(f"ALTER DATABASE {name} SET synchronous_commit = on")
        )
    async with open_store(postgres_url) as db, GroupCommitter(db, window=0.01) as committer:
        assert await committer.submit(tag_then_probe, "m1", one_statement=True) is True
        assert await committer.submit(tag_then_probe, "m2") is False
        relaxed = committer.submit(tag_then_probe, "m3", one_statement=True, durable=False)
        assert await relaxed is True
        assert await committer.submit(synchronous_commit, "x", one_statement=True) == "on"
        unsynced = committer.submit(synchronous_commit, "x", one_statement=True, durable=False)
        assert await unsynced == "off"
        together = await asyncio.gather(
            committer.submit(tag_then_probe, "m4", one_statement=True),
            committer.submit(tag_then_probe, "m5", one_statement=True),
        )
        assert list(together) == [False, False]
        assert await tags(db) == ["m1", "m2", "m3", "m4", "m5"]
