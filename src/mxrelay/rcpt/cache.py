"""The verdict cache: how long a domain's verdict may be reused, an LRU bound, and single-flight.

Keyed by the lowercase A-label, it holds domain verdicts (never replies: the address is added per
RCPT). Lifetimes follow recipient-validation.md section 6:
- positive (including null MX, which is positive data): the minimum TTL of everything the verdict
  relied on, clamped to [min_ttl, max_ttl]; a TTL of 0 is never reused across RCPTs;
- negative (NXDOMAIN, NODATA and the 550s built on them): RFC 2308's min(SOA TTL, SOA MINIMUM),
  capped at negative_max_ttl, and not cached at all when an answer came without an SOA;
- transient (SERVFAIL, timeout, REFUSED, budget exhausted): transient_ttl, and the verdict stays a
  4xx: the cache returns what it was given, it never rewrites a code;
- serve-stale (RFC 8767, optional): an expired positive verdict is kept `serve_stale` longer; when
  its refresh fails temporarily it is served again, re-checked after transient_ttl.

The cache is bounded (least recently used entries go first), so a flood of random domains costs at
most `max_entries` entries. `SingleFlight` makes concurrent lookups of one domain share one task.
Time comes from an injected clock; nothing here does I/O.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from mxrelay.config import DnsSettings
from mxrelay.rcpt.verdict import Lifetime, Verdict


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Bounds of the cache, in entries and seconds."""

    max_entries: int = 10_000
    min_ttl: float = 5.0
    max_ttl: float = 86_400.0
    negative_max_ttl: float = 900.0
    transient_ttl: float = 30.0
    serve_stale: float = 0.0

    @classmethod
    def from_settings(cls, dns: DnsSettings) -> CachePolicy:
        return cls(
            max_entries=dns.cache_size,
            min_ttl=dns.cache_min_ttl.total_seconds(),
            max_ttl=dns.cache_max_ttl.total_seconds(),
            negative_max_ttl=dns.negative_max_ttl.total_seconds(),
            transient_ttl=dns.transient_ttl.total_seconds(),
            serve_stale=dns.serve_stale.total_seconds(),
        )


def lifetime(verdict: Verdict, policy: CachePolicy) -> float | None:
    """Seconds `verdict` may be reused for later RCPTs, or None when it must not be kept."""
    if verdict.lifetime is Lifetime.POSITIVE:
        if verdict.ttl is None or verdict.ttl <= 0:
            return None
        return min(max(float(verdict.ttl), policy.min_ttl), policy.max_ttl)
    if verdict.lifetime is Lifetime.NEGATIVE:
        if verdict.ttl is None or verdict.ttl <= 0:
            return None
        return min(float(verdict.ttl), policy.negative_max_ttl)
    if verdict.lifetime is Lifetime.TRANSIENT and verdict.transient:
        return policy.transient_ttl if policy.transient_ttl > 0 else None
    return None


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached verdict. `stale` marks an expired positive verdict served after a failed refresh."""

    verdict: Verdict
    expires_at: float
    stale_until: float
    stale: bool = False


class VerdictCache:
    """LRU-bounded map from domain to `Entry`; owned by one RecipientChecker."""

    def __init__(
        self,
        policy: CachePolicy,
        clock: Callable[[], float],
        *,
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._on_evict = on_evict
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        """The entry for `key` while it is fresh; expired entries past their stale time are dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now < entry.expires_at:
            self._entries.move_to_end(key)
            return entry
        if now >= entry.stale_until:
            del self._entries[key]
        return None

    def get_stale(self, key: str) -> Entry | None:
        """An expired positive entry that may still be served if its refresh fails temporarily."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if entry.expires_at <= now < entry.stale_until:
            return entry
        return None

    def put(self, key: str, verdict: Verdict) -> Entry | None:
        """Keep `verdict` for as long as its lifetime allows; returns the entry, or None if not kept.

        A verdict that may not be kept also drops any older entry for the domain, so nothing
        outlives a fresher answer (a zone that moved to TTL 0 is asked every time).
        """
        seconds = lifetime(verdict, self.policy)
        if seconds is None:
            self._entries.pop(key, None)
            return None
        now = self._clock()
        expires = now + seconds
        stale_until = expires
        if verdict.lifetime is Lifetime.POSITIVE and self.policy.serve_stale > 0:
            stale_until = expires + self.policy.serve_stale
        entry = Entry(verdict, expires, stale_until)
        self._store(key, entry)
        return entry

    def keep_stale(self, key: str, entry: Entry) -> Entry:
        """Serve `entry` again after a failed refresh, until the next re-check (transient_ttl)."""
        now = self._clock()
        recheck = min(now + self.policy.transient_ttl, entry.stale_until)
        kept = replace(entry, expires_at=recheck, stale=True)
        self._store(key, kept)
        return kept

    def _store(self, key: str, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.policy.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict()


K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """At most one running task per key; callers that arrive meanwhile share its result."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def run(self, key: K, work: Callable[[], Awaitable[T]]) -> tuple[asyncio.Task[T], bool]:
        """The task computing `key` (started with `work` if none runs) and whether it was joined."""
        task = self._tasks.get(key)
        if task is not None:
            return task, True
        task = asyncio.ensure_future(work())
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task, False

    def _finished(self, key: K, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an error with no waiter left is not reported twice

    async def aclose(self) -> None:
        """Cancel every running task and wait for them to finish."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
