"""SQLite's writer: a batch alone on the event loop and larger ones on the writer thread, their
fsync apart, another process's lock waited for off the loop, cancelled writers, failures, and
checkpoints on the writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mxrelay.store import sqlite as sqlite_store
from mxrelay.store.backend import Database
from mxrelay.store.open import OpenMode, open_store
from tests.support.polling import until

BLOB = b"x" * 100_000


def insert_tag(conn: Connection, name: str, fail: str = "") -> str:
    conn.execute(text("INSERT INTO message_tags (message_id, tag_id) VALUES (:m, 1)"), {"m": name})
    if fail:
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
    return name


def insert_blob(conn: Connection, name: str) -> None:
    conn.execute(
        text(
            "INSERT INTO message_bodies (message_id, received_at, encoding, stored_size, raw) "
            "VALUES (:m, 0, 'identity', :n, :raw)"
        ),
        {"m": name, "n": len(BLOB), "raw": BLOB},
    )


def log_size(path: Path) -> int:
    """Bytes of the write-ahead log's file beside the database `path`."""
    log = path.with_name(path.name + "-wal")
    return log.stat().st_size if log.exists() else 0


def tag_names(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT message_id FROM message_tags ORDER BY message_id"))
    return [row[0] for row in rows]


async def test_a_durable_batch_is_answered_after_its_fsync(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'relay.db'}") as db:
        result, synced = await db.write_batch(insert_tag, "m1")
        assert result == "m1"
        assert synced is not None
        await synced
        assert await db.read(tag_names) == ["m1"]
        _, relaxed = await db.write_batch(insert_tag, "m2", durable=False)
        assert relaxed is None  # rides on the next fsync
    async with open_store(f"sqlite:///{tmp_path / 'relay.db'}", synchronous="normal") as db:
        _, synced = await db.write_batch(insert_tag, "m3")
        assert synced is None  # synchronous=normal: the disk is reached at checkpoints
        assert await db.read(tag_names) == ["m1", "m2", "m3"]


def insert_tag_noting_thread(conn: Connection, name: str, threads: list[threading.Thread]) -> str:
    threads.append(threading.current_thread())
    return insert_tag(conn, name)


async def test_a_batch_alone_is_written_on_the_loop_and_others_on_the_writer_thread(
    tmp_path: Path,
) -> None:
    """A lone write waits for nothing else, so it is written at once on the loop; a larger
    batch is written beside the loop, which meanwhile serves the writes of the next one. The
    delivery process's store writes on its loop either way."""
    path = tmp_path / "relay.db"
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []
    async with open_store(f"sqlite:///{path}") as db:
        for name, alone in (("m1", True), ("m2", False)):
            _, synced = await db.write_batch(insert_tag_noting_thread, name, threads, alone=alone)
            if synced is not None:
                await synced
        assert [thread is loop_thread for thread in threads] == [True, False]
        assert await db.read(tag_names) == ["m1", "m2"]
    threads.clear()
    async with open_store(f"sqlite:///{path}", OpenMode.DELIVERY) as delivery:
        _, synced = await delivery.write_batch(insert_tag_noting_thread, "m3", threads)
        if synced is not None:
            await synced
        assert threads == [loop_thread]


class StandInDisk:
    """`_datasync` for the tests of where a fsync runs: quick, or slow once when told; it
    records the thread of each fsync. (On a busy machine a real fsync may take longer than
    `QUICK_FSYNC`, and then goes to the thread, as it should.)"""

    def __init__(self) -> None:
        self.synced_on: list[threading.Thread] = []
        self.slow_once = False

    def __call__(self, fd: int) -> None:
        if self.slow_once:
            self.slow_once = False
            time.sleep(sqlite_store.QUICK_FSYNC * 4)
        self.synced_on.append(threading.current_thread())


@contextlib.asynccontextmanager
async def on_stand_in_disk(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Database, StandInDisk]]:
    """A store whose fsyncs go to a `StandInDisk`, after one quick write alone (the
    migrations' own fsync may have been slow)."""
    disk = StandInDisk()
    async with open_store(f"sqlite:///{path}") as db:
        monkeypatch.setattr(sqlite_store, "_datasync", disk)
        _, synced = await db.write_batch(insert_tag, "m0", alone=True)
        if synced is not None:
            await synced
        disk.synced_on.clear()
        yield db, disk


async def test_a_batch_alone_is_fsynced_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing else waiting: the fsync runs at once, on the loop, not handed to the thread."""
    async with on_stand_in_disk(tmp_path / "relay.db", monkeypatch) as (db, disk):
        result, synced = await db.write_batch(insert_tag, "m1", alone=True)
        assert (result, synced) == ("m1", None)
        assert disk.synced_on == [threading.current_thread()]
        _, relaxed = await db.write_batch(insert_tag, "m2", durable=False, alone=True)
        assert relaxed is None
        assert len(disk.synced_on) == 1  # not durable: rides on the next fsync
        assert await db.read(tag_names) == ["m0", "m1", "m2"]


async def test_after_a_slow_fsync_a_batch_alone_is_fsynced_on_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that stalls holds the event loop once: the next fsyncs go to the writer thread
    until one there is quick again."""
    async with on_stand_in_disk(tmp_path / "relay.db", monkeypatch) as (db, disk):
        loop_thread = threading.current_thread()
        disk.slow_once = True
        await db.write_batch(insert_tag, "m1", alone=True)  # slow, on the loop
        _, synced = await db.write_batch(insert_tag, "m2", alone=True)
        assert synced is not None
        await synced  # quick, on the writer thread
        await db.write_batch(insert_tag, "m3", alone=True)  # quick again: on the loop
        assert [t is loop_thread for t in disk.synced_on] == [True, False, True]
        assert await db.read(tag_names) == ["m0", "m1", "m2", "m3"]


@pytest.mark.parametrize("alone", [True, False])
async def test_a_batch_waits_for_another_process_off_the_event_loop(
    tmp_path: Path, alone: bool
) -> None:
    """While another connection (as the `mxrelay queue` command would) holds SQLite's write lock,
    a group-commit batch waits for it on the writer thread: the event loop keeps running. (A
    batch alone begins on the loop, then goes to the thread, where it is fsynced too; a larger
    one begins on the thread in any case.)"""
    path = tmp_path / "relay.db"
    async with open_store(f"sqlite:///{path}") as db:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(db.write_batch(insert_tag, "m1", alone=alone))
            for _ in range(10):  # the loop turns while the batch waits for the lock
                await asyncio.sleep(0.01)
            assert not write.done()
            other.execute("COMMIT")
            async with asyncio.timeout(10):
                result, synced = await write
            assert result == "m1"
            assert (synced is None) is alone  # a batch alone was synced on the thread
            if synced is not None:
                await synced
        finally:
            other.close()
        result, synced = await db.write_batch(insert_tag, "m2")
        assert synced is not None
        await synced
        assert await db.read(tag_names) == ["m1", "m2"]


async def test_the_delivery_process_writes_between_batches_written_without_a_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's batches take SQLite's write lock only once the fsync before them is done
    (on the writer thread), so another process's writes (the delivery process's) find it free
    while the disk works. Taken on the loop, the lock was held through every fsync and the
    other writes waited until the relay had nothing left to write."""
    path = tmp_path / "relay.db"

    def slow_disk(fd: int) -> None:
        time.sleep(0.02)

    async with (
        open_store(f"sqlite:///{path}") as db,
        open_store(f"sqlite:///{path}", OpenMode.DELIVERY) as delivery,
    ):
        monkeypatch.setattr(sqlite_store, "_datasync", slow_disk)

        async def relay_batches() -> None:
            unsynced: list[Awaitable[None]] = []
            for n in range(40):  # as the group committer writes them: two fsyncs pending at most
                _, synced = await db.write_batch(insert_tag, f"r{n:02}")
                assert synced is not None
                unsynced.append(synced)
                if len(unsynced) == 2:
                    await unsynced.pop(0)
            await asyncio.gather(*unsynced)

        relay = asyncio.create_task(relay_batches())
        await asyncio.sleep(0.05)
        for n in range(3):
            await delivery.write(insert_tag, f"d{n}", durable=False)
        assert not relay.done()  # the delivery process's writes did not wait for the relay's end
        async with asyncio.timeout(30):
            await relay
        assert len(await db.read(tag_names)) == 43


async def test_a_failed_batch_leaves_the_connection_usable(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'relay.db'}") as db:
        with pytest.raises(SQLAlchemyError):
            await db.write_batch(insert_tag, "m1", "and then fail")
        with pytest.raises(SQLAlchemyError):
            await db.write(insert_tag, "m2", "and then fail")
        assert (await db.write_batch(insert_tag, "m3"))[0] == "m3"
        assert await db.write(insert_tag, "m4", durable=False) == "m4"
        assert await db.read(tag_names) == ["m3", "m4"]


async def test_a_cancelled_writer_keeps_the_connection_until_its_work_is_done(
    tmp_path: Path,
) -> None:
    """The next write may only take the connection once the thread's transaction has ended."""
    started, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> None:
        insert_tag(conn, "slow")
        started.set()
        release.wait(10)

    async with open_store(f"sqlite:///{tmp_path / 'relay.db'}") as db:
        writer = asyncio.create_task(db.write(slow))
        assert await asyncio.to_thread(started.wait, 10)  # the transaction is on the thread
        writer.cancel()
        nxt = asyncio.create_task(db.write_batch(insert_tag, "next"))
        await asyncio.sleep(0.05)
        assert not writer.done()  # still waiting for its transaction, cancelled or not
        assert not nxt.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await writer
        async with asyncio.timeout(10):
            await nxt
        assert await db.read(tag_names) == ["next", "slow"]  # the cancelled write was committed


async def test_checkpoints_run_on_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer connection never checkpoints by itself (that would hold up the event loop);
    the store does, every CHECKPOINT_COMMITS commits."""
    path = tmp_path / "relay.db"
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_COMMITS", 1000)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 60.0)
    async with open_store(f"sqlite:///{path}") as db:
        for n in range(20):
            await db.write_batch(insert_blob, f"b{n}")
        await db.write(tag_names)  # the writer thread is idle
        assert path.stat().st_size < len(BLOB) * 5  # the rows are still only in the log
    path.unlink()
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_COMMITS", 5)
    async with open_store(f"sqlite:///{path}") as db:
        for n in range(20):
            await db.write_batch(insert_blob, f"b{n}")
        # The checkpoints run on a thread of their own: the rows are copied into the database file.
        await until(lambda: path.stat().st_size > len(BLOB) * 10)


async def test_the_log_starts_over_while_writes_follow_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes without a pause, from the relay's store and from the delivery process's beside
    it, still let each checkpoint copy the whole log, so the next commit writes it from its
    start: the file stays the size of a few commits. (When a commit could overtake the
    checkpoint, the log grew by every commit for as long as the writes went on.) Only the
    relay's store checkpoints."""
    path = tmp_path / "relay.db"
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_COMMITS", 4)
    async with (
        open_store(f"sqlite:///{path}") as db,
        open_store(f"sqlite:///{path}", OpenMode.DELIVERY) as delivery,
    ):
        pending = []
        largest = 0
        for n in range(120):
            _, synced = await db.write_batch(insert_blob, f"b{n}")
            pending.append(synced)
            if n % 3 == 0:
                await delivery.write(insert_blob, f"d{n}")
            largest = max(largest, log_size(path))
        await asyncio.gather(*(synced for synced in pending if synced is not None))
        assert largest < len(BLOB) * 12  # 160 blobs were written
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_COMMITS", 1)
    async with open_store(f"sqlite:///{path}", OpenMode.DELIVERY) as delivery:
        size = path.stat().st_size
        for n in range(5):
            await delivery.write(insert_blob, f"e{n}")
        assert path.stat().st_size == size  # still in the log: the delivery store left it
        assert log_size(path) > len(BLOB) * 5


async def test_the_relay_checkpoints_the_delivery_process_writes_while_it_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog delivered while no mail comes in: only the delivery process writes, and the
    relay, which alone checkpoints, still starts the log over every CHECKPOINT_INTERVAL
    (without it the log grew by every write until the relay committed again)."""
    path = tmp_path / "relay.db"
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.02)
    async with (
        open_store(f"sqlite:///{path}"),  # the relay's store, idle
        open_store(f"sqlite:///{path}", OpenMode.DELIVERY) as delivery,
    ):
        largest = 0
        for n in range(40):
            await delivery.write(insert_blob, f"d{n}")
            await asyncio.sleep(0.01)  # the relay's loop turns, as it does while idle
            largest = max(largest, log_size(path))
        assert largest < len(BLOB) * 12  # 40 blobs were written
        await until(lambda: path.stat().st_size > len(BLOB) * 30)  # copied into the file


async def test_a_long_read_holds_a_checkpoint_up_only_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint waits CHECKPOINT_WAIT for a reader still reading the log (a long search),
    then settles for what it could copy, and the writes waiting behind it go on; the next
    checkpoint after the reader is done starts the log over."""
    path = tmp_path / "relay.db"
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_COMMITS", 2)
    async with open_store(f"sqlite:///{path}") as db:
        await db.write(insert_blob, "b0")
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM message_bodies").fetchall()  # holds a snapshot
            started = time.monotonic()
            for n in range(1, 11):  # five checkpoints
                await db.write(insert_blob, f"b{n}")
            # At sqlite3's default busy timeout each would wait 5 s.
            assert time.monotonic() - started < 5 * 1.0
            assert log_size(path) > len(BLOB) * 10  # the log could not start over
        finally:
            reader.close()
        for n in range(11, 15):
            await db.write(insert_blob, f"b{n}")
        grown = log_size(path)
        for n in range(15, 40):
            await db.write(insert_blob, f"b{n}")
        assert log_size(path) == grown  # written over from its start, not appended to
