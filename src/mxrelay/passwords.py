"""Users files in htpasswd form (`user:bcrypt-hash` lines, as `htpasswd -B` writes them) and the
password checks against them, shared by SMTP AUTH and the web's Basic authentication.

bcrypt is slow on purpose (milliseconds to a second per check, by the hash's cost), so checks run
on a small thread pool of their own (`CheckPool`), never on the event loop: a burst of guesses
queues there, not in the executor that builds messages and fetches Graph tokens, and past
`CHECK_BACKLOG` waiting checks a new one is refused at once instead of queued. An unknown user is
checked against a dummy hash of the users' own cost, so timing does not reveal which users exist.
As with `htpasswd -B` (and every bcrypt implementation that does not refuse them), only a
password's first 72 bytes count. A `VerifiedCache` lets a client that sends the same good
credentials with every request (HTTP Basic does) skip bcrypt for a short while. A hash never
appears in an error: a bad line is named by its number.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt

PASSWORD_BYTES = 72
"""bcrypt's input limit: longer passwords are cut here, as htpasswd -B does (bcrypt 5 raises)."""

CHECK_THREADS = 2
"""Threads for bcrypt checks: two cores' worth; a wider pool only queues inside the CPU."""

CHECK_BACKLOG = 32
"""Checks waiting for a thread at most; past it, a check is refused at once (a few seconds of
work at common costs), so a burst of guesses cannot make a legitimate login wait minutes."""

CACHE_CAPACITY = 1024
"""Verified credentials a `VerifiedCache` remembers; the least recently used are forgotten."""

CACHE_TTL = 60.0
"""Seconds a verified credential is taken without a new bcrypt check."""

_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LAST_CHAR = ".Oeu"  # the 22nd salt and 31st hash characters carry 2 and 4 unused bits: zero


class UserTableError(ValueError):
    pass


class CheckPool:
    """The threads bcrypt checks run on, with a bound on the checks waiting for them. Started on
    the first check; `close()` stops the threads (a later check starts new ones)."""

    def __init__(
        self,
        *,
        threads: int = CHECK_THREADS,
        backlog: int = CHECK_BACKLOG,
        name: str = "mxrelay-auth",
    ) -> None:
        self.threads = threads
        self.backlog = backlog
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0

    async def checkpw(self, candidate: bytes, hashed: bytes) -> bool | None:
        """Whether `candidate` matches `hashed`; None when `backlog` checks are already waiting."""
        if self._pending >= self.backlog:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix=self.name)
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, bcrypt.checkpw, candidate, hashed
            )
        finally:
            self._pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class VerifiedCache:
    """Credentials that passed a check in the last `ttl` seconds, at most `capacity` of them.

    Keyed by an HMAC of the user and the password under a key drawn when the cache is made, so
    neither the password nor a plain hash of it is kept. Only successes are remembered: a wrong
    password always costs a full check, and a client's failures still count against it.
    """

    def __init__(
        self,
        *,
        capacity: int = CACHE_CAPACITY,
        ttl: float = CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: collections.OrderedDict[bytes, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, username: str, password: bytes) -> bytes:
        name = username.encode("utf-8", "surrogateescape")
        message = len(name).to_bytes(4, "big") + name + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def hit(self, key: bytes) -> bool:
        expires = self._entries.get(key)
        if expires is None:
            return False
        if expires <= self.clock():
            del self._entries[key]
            return False
        self._entries.move_to_end(key)
        return True

    def add(self, key: bytes) -> None:
        self._entries[key] = self.clock() + self.ttl
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class UserTable:
    """The users of one file, checked on `pool` (a pool of its own unless one is shared), and,
    with a `cache`, remembered for a while once verified."""

    def __init__(
        self,
        users: dict[str, bytes],
        *,
        pool: CheckPool | None = None,
        cache: VerifiedCache | None = None,
    ) -> None:
        self._users = users
        self._dummy = dummy_hash(users.values())
        self._owns_pool = pool is None
        self._pool = pool if pool is not None else CheckPool()
        self._cache = cache

    @classmethod
    def load(
        cls, path: Path, *, pool: CheckPool | None = None, cache: VerifiedCache | None = None
    ) -> UserTable:
        """Read `user:bcrypt-hash` lines (blank lines and `#` comments skipped); a line that is not
        one raises UserTableError naming its number, never its content."""
        users: dict[str, bytes] = {}
        text = path.read_text(encoding="utf-8")
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user or _cost(hashed.encode("ascii", "replace")) is None:
                raise UserTableError(f"line {number} is not user:bcrypt-hash")
            users[user] = hashed.encode("ascii")
        return cls(users, pool=pool, cache=cache)

    def __len__(self) -> int:
        return len(self._users)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._users)

    @property
    def dummy(self) -> bytes:
        """The hash an unknown user is checked against (same prefix and cost as the users')."""
        return self._dummy

    def remembers(self, username: str, password: str) -> bool:
        """Whether these credentials passed a check lately (the cache's, no bcrypt)."""
        if self._cache is None or username not in self._users:
            return False
        return self._cache.hit(self._cache.key(username, _candidate(password)))

    async def verify(self, username: str, password: str) -> bool | None:
        """True or False; None when CHECK_BACKLOG checks are already waiting (try later)."""
        hashed = self._users.get(username)
        candidate = _candidate(password)
        key = None
        if self._cache is not None and hashed is not None:
            key = self._cache.key(username, candidate)
            if self._cache.hit(key):
                return True
        matched = await self._pool.checkpw(candidate, hashed or self._dummy)
        if matched is None:
            return None
        if matched and hashed is not None and key is not None and self._cache is not None:
            self._cache.add(key)
        return hashed is not None and matched

    def close(self) -> None:
        """Stop the check threads if the pool is this table's own."""
        if self._owns_pool:
            self._pool.close()


def _candidate(password: str) -> bytes:
    """What bcrypt is given: the UTF-8 bytes (undecodable ones kept as they came), cut at 72."""
    return password.encode("utf-8", "surrogateescape")[:PASSWORD_BYTES]


def _cost(hashed: bytes) -> tuple[bytes, int] | None:
    """(`$2b$`-style prefix, cost) of a bcrypt hash, or None if it is not one."""
    if len(hashed) != 60 or hashed[:1] != b"$" or hashed[3:4] != b"$" or hashed[6:7] != b"$":
        return None
    prefix, cost = hashed[:4], hashed[4:6]
    if prefix not in (b"$2a$", b"$2b$", b"$2y$") or not cost.isdigit():
        return None
    return prefix, int(cost)


def dummy_hash(hashes: Iterable[bytes], default_cost: int = 12) -> bytes:
    """A well-formed bcrypt hash that matches no password, with the prefix and cost most users
    have (the cost is what a check's time depends on). Made from random characters: computing a
    real one would cost a full bcrypt at start-up, which is a second or more at high costs."""
    kinds = collections.Counter(kind for kind in map(_cost, hashes) if kind is not None)
    prefix, cost = max(kinds, key=lambda k: (kinds[k], k[1])) if kinds else (b"$2b$", default_cost)

    def chars(count: int) -> str:
        text = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(count - 1))
        return text + secrets.choice(_LAST_CHAR)

    return prefix + b"%02d$" % cost + (chars(22) + chars(31)).encode("ascii")
