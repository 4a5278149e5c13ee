"""Opening the store: URLs, the one-relay-per-SQLite-file rule, schema checks; SQLite's writer."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mxrelay.store.db import (
    Dialect,
    SchemaOutdated,
    StoreError,
    StoreLocked,
    load_queries,
    open_store,
    parse_database_url,
    to_the_end,
)


def test_urls() -> None:
    sqlite = parse_database_url("sqlite:///./data/mxrelay.db")
    assert sqlite.dialect is Dialect.SQLITE
    assert sqlite.path == Path("./data/mxrelay.db")
    assert sqlite.url.drivername == "sqlite+pysqlite"
    pg = parse_database_url("postgresql://relay:secret@db.example:5433/mail")
    assert pg.dialect is Dialect.POSTGRESQL
    assert pg.url.drivername == "postgresql+asyncpg"
    with pytest.raises(StoreError, match="needs a file"):
        parse_database_url("sqlite://")
    with pytest.raises(StoreError, match="unsupported"):
        parse_database_url("mysql://db/mail")


def test_both_dialects_name_the_same_queries() -> None:
    assert load_queries(Dialect.SQLITE).keys() == load_queries(Dialect.POSTGRESQL).keys()


async def test_a_second_relay_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    async with open_store(url):
        with pytest.raises(StoreLocked, match="in use by another mxrelay process"):
            async with open_store(url):
                pass
        # the queue command works beside a running relay
        async with open_store(url, migrate=False, exclusive=False):
            pass
    async with open_store(url):  # released on close
        pass


def test_the_lock_is_held_by_a_live_process_and_released_by_its_death(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    code = (
        "import asyncio\nfrom mxrelay.store.db import open_store\n"
        f"async def main():\n    async with open_store({url!r}):\n        pass\n"
        "asyncio.run(main())\n"
    )
    holding = (
        "import asyncio, sys\nfrom mxrelay.store.db import open_store\n"
        f"async def main():\n    async with open_store({url!r}):\n"
        "        print('open', flush=True)\n        sys.stdin.readline()\n"
        "asyncio.run(main())\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", holding], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"open\n"
            second = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
            assert second.returncode != 0
            assert f"pid {holder.pid}" in second.stderr.decode()
        finally:
            holder.kill()  # SIGKILL: the kernel drops the lock with the process
            holder.wait(timeout=30)
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr.decode()


async def test_an_unmigrated_database_is_refused_without_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaOutdated, match="mxrelay db upgrade"):
        async with open_store(url, migrate=False):
            pass


async def test_a_batch_waits_for_another_process_off_the_event_loop(tmp_path: Path) -> None:
    """While another connection (as the `mxrelay queue` command would) holds SQLite's write lock,
    a group-commit batch waits for it on the writer thread: the event loop keeps running."""
    path = tmp_path / "relay.db"
    async with open_store(f"sqlite:///{path}") as db:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(db.write_batch(insert_tag, "m1"))
            ticks = 0
            for _ in range(10):  # the loop turns while the batch waits for the lock
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 10
            assert not write.done()
            other.execute("COMMIT")
            async with asyncio.timeout(10):
                assert await write == "m1"
        finally:
            other.close()
        assert await db.read(tag_names) == ["m1"]
        assert await db.write_batch(insert_tag, "m2") == "m2"  # and the next one is written at once
        assert await db.read(tag_names) == ["m1", "m2"]


async def test_a_failed_batch_leaves_the_connection_usable(database_url: str) -> None:
    async with open_store(database_url) as db:
        with pytest.raises(SQLAlchemyError):
            await db.write_batch(insert_tag, "m1", "and then fail")
        assert await db.write_batch(insert_tag, "m2") == "m2"
        assert await db.write(insert_tag, "m3", durable=False) == "m3"
        assert await db.read(tag_names) == ["m2", "m3"]


async def test_a_cancelled_writer_keeps_the_connection_until_its_work_is_done() -> None:
    """The next write may only take the connection once the thread's statement or commit ended."""
    loop = asyncio.get_running_loop()
    work: asyncio.Future[str] = loop.create_future()
    waiter = asyncio.create_task(to_the_end(work))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0.01)
    assert not waiter.done()  # still waiting for the work, cancelled or not
    work.set_result("committed")
    with pytest.raises(asyncio.CancelledError):
        await waiter


def insert_tag(conn: Connection, name: str, fail: str = "") -> str:
    conn.execute(text("INSERT INTO message_tags (message_id, tag) VALUES (:m, 'a')"), {"m": name})
    if fail:
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
    return name


def tag_names(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT message_id FROM message_tags ORDER BY message_id"))
    return [row[0] for row in rows]
