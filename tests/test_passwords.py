"""The users file's checks beyond what SMTP AUTH's tests show: the cache of verified credentials
(a repeat skips bcrypt; lifetime, size and key bounded; failures and unknown users never
remembered) and one check pool shared by two files, bounded as a whole."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from mxrelay.passwords import CheckPool, UserTable, VerifiedCache
from tests.support.clocks import FakeClock
from tests.support.htpasswd import htpasswd_file


def table(tmp_path: Path, pool: CheckPool, cache: VerifiedCache, **users: str) -> UserTable:
    return UserTable.load(htpasswd_file(tmp_path / "users", 4, **users), pool=pool, cache=cache)


async def test_a_verified_login_is_remembered_for_the_caches_lifetime(tmp_path: Path) -> None:
    clock = FakeClock()
    pool = CheckPool()
    users = table(tmp_path, pool, VerifiedCache(ttl=60, clock=clock), alice="pw")
    assert not users.remembers("alice", "pw")
    assert await users.verify("alice", "pw")
    assert users.remembers("alice", "pw")
    pool.backlog = 0  # from here on, any bcrypt check would be refused (None)
    assert await users.verify("alice", "pw") is True
    assert await users.verify("alice", "wrong") is None
    clock.advance(61)
    assert not users.remembers("alice", "pw")
    assert await users.verify("alice", "pw") is None  # a check again, once the entry expired
    pool.close()


async def test_failures_and_unknown_users_are_never_remembered(tmp_path: Path) -> None:
    cache = VerifiedCache()
    pool = CheckPool()
    users = table(tmp_path, pool, cache, alice="pw")
    assert not await users.verify("alice", "wrong")
    assert not await users.verify("mallory", "pw")
    assert len(cache) == 0
    assert not users.remembers("mallory", "pw")
    pool.close()


def test_the_cache_is_bounded_and_keyed_by_user_and_password_apart() -> None:
    cache = VerifiedCache(capacity=3)
    keys = [cache.key(f"user{n}", b"pw") for n in range(5)]
    for key in keys:
        cache.add(key)
    assert len(cache) == 3
    assert not cache.hit(keys[0])
    assert cache.hit(keys[4])
    # a user name that swallows the start of the password is another key
    assert cache.key("a", b"b:c") != cache.key("a:b", b"c")
    assert cache.key("a\0b", b"c") != cache.key("a", b"b\0c")
    assert b"pw" not in cache.key("user0", b"pw")
    assert VerifiedCache().key("user0", b"pw") != keys[0]  # each cache draws its own key


async def test_two_files_share_one_bounded_pool(tmp_path: Path) -> None:
    """The UI's and the send API's users check on one pool: its backlog bounds both together."""
    pool = CheckPool(backlog=4)
    ui = UserTable.load(htpasswd_file(tmp_path / "ui", 8, alice="pw"), pool=pool)
    send = UserTable.load(htpasswd_file(tmp_path / "send", 8, app="pw"), pool=pool)
    started = time.monotonic()
    results = await asyncio.gather(
        *(ui.verify("alice", "wrong") for _ in range(4)),
        *(send.verify("app", "wrong") for _ in range(4)),
    )
    assert results.count(None) == 4
    assert results.count(False) == 4
    assert time.monotonic() - started < 30
    ui.close()  # a shared pool is its owner's to close: both tables still check
    assert await send.verify("app", "pw")
    pool.close()
