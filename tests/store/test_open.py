"""Opening the store: URLs, the one-relay-per-SQLite-file rule, schema checks, the readers' cache."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from mxrelay.config.store import StoreSettings
from mxrelay.store.backend import Database, Dialect, SchemaOutdated, StoreError, StoreLocked
from mxrelay.store.migrate import current_revision, head_revision
from mxrelay.store.open import OpenMode, open_store, parse_database_url
from mxrelay.store.sqlite import READ_CACHE
from tests.support.relay_app import running_relay


def test_urls() -> None:
    sqlite = parse_database_url("sqlite:///./data/mxrelay.db")
    assert sqlite.dialect is Dialect.SQLITE
    assert sqlite.path == Path("./data/mxrelay.db")
    assert sqlite.url.drivername == "sqlite+pysqlite"
    pg = parse_database_url("postgresql://relay:secret@db.example:5433/mail")
    assert pg.dialect is Dialect.POSTGRESQL
    assert pg.url.drivername == "postgresql+asyncpg"
    with pytest.raises(StoreError, match="names no SQLite file"):
        parse_database_url("sqlite://")
    with pytest.raises(StoreError, match="does not support"):
        parse_database_url("mysql://db/mail")


async def test_a_second_relay_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    async with open_store(url):
        with pytest.raises(StoreLocked, match="in use by another mxrelay process"):
            async with open_store(url):
                pass
        # the queue command works beside a running relay
        async with open_store(url, OpenMode.QUEUE):
            pass
    async with open_store(url):  # released on close
        pass


@pytest.mark.slow
def test_the_lock_is_held_by_a_live_process_and_released_by_its_death(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    code = (
        "import asyncio\nfrom mxrelay.store.open import open_store\n"
        f"async def main():\n    async with open_store({url!r}):\n        pass\n"
        "asyncio.run(main())\n"
    )
    holding = (
        "import asyncio, sys\nfrom mxrelay.store.open import open_store\n"
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
        async with open_store(url, OpenMode.QUEUE):
            pass


def _thread(conn: Connection) -> int:
    return threading.get_ident()


async def _on_the_loop(db: Database) -> bool:
    return await db.read(_thread) == threading.get_ident()


@pytest.mark.parametrize(
    ("mode", "locks", "fresh", "on_the_loop"),
    [
        (OpenMode.RELAY, True, "migrated", False),
        (OpenMode.UPGRADE, True, "migrated", False),
        (OpenMode.DELIVERY, False, "refused", True),
        (OpenMode.QUEUE, False, "refused", False),
        (OpenMode.INSPECT, False, "opened as it is", False),
    ],
)
async def test_each_user_opens_the_store_its_own_way(
    tmp_path: Path, mode: OpenMode, locks: bool, fresh: str, on_the_loop: bool
) -> None:
    """Whether it takes the SQLite file's lock, what it does with a database at no schema, and
    whether SQLite work runs on the event loop."""
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    if fresh == "refused":
        with pytest.raises(SchemaOutdated):
            async with open_store(empty, mode):
                pass
    else:
        async with open_store(empty, mode) as db:
            revision = await db.read(current_revision)
        assert revision == (head_revision() if fresh == "migrated" else None)

    url = f"sqlite:///{tmp_path / 'relay.db'}"
    async with open_store(url):  # a running relay
        if locks:
            with pytest.raises(StoreLocked):
                async with open_store(url, mode):
                    pass
        else:
            async with open_store(url, mode):
                pass
    async with open_store(url, mode) as db:
        assert await _on_the_loop(db) is on_the_loop


def _cache_size(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())


async def test_sqlite_readers_keep_the_page_cache_they_are_given(tmp_path: Path) -> None:
    """MXRELAY_STORE_SQLITE_READ_CACHE, in bytes, becomes each reader's `cache_size` (negative:
    KiB); its default is the store's own."""
    assert StoreSettings().sqlite_read_cache == READ_CACHE == 64 * 1024 * 1024
    async with open_store(f"sqlite:///{tmp_path / 'default.db'}") as db:
        assert await db.read(_cache_size) == -65536
    async with open_store(f"sqlite:///{tmp_path / 'small.db'}", read_cache=8 * 1024**2) as db:
        assert await db.read(_cache_size) == -8192
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
        "MXRELAY_STORE_SQLITE_READ_CACHE": "8MiB",
    }
    async with running_relay(env) as relay:
        assert relay.queue_stage is not None
        assert relay.queue_stage.db is not None
        assert await relay.queue_stage.db.read(_cache_size) == -8192
