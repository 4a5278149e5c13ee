"""The verdict cache on its own, with an injected clock: clamps, negative and transient rules,
serve-stale, the LRU bound, and single-flight."""

from __future__ import annotations

import asyncio
import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.model import Reason
from mxrelay.rcpt import verdict as v
from mxrelay.rcpt.cache import CachePolicy, SingleFlight, VerdictCache, lifetime
from mxrelay.rcpt.verdict import Lifetime, Verdict
from tests.support.clocks import FakeClock

POLICY = CachePolicy(
    max_entries=100,
    min_ttl=5,
    max_ttl=86_400,
    negative_max_ttl=900,
    transient_ttl=30,
    serve_stale=0,
)


def positive(ttl: int | None) -> Verdict:
    return v.accepted("C1", ttl=ttl)


def negative(ttl: int | None) -> Verdict:
    return v.domain_not_found(550, (), ttl)


def transient() -> Verdict:
    return v.temporary_failure("x.example.net", "B7", ())


# --- lifetime() ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (positive(300), 300),
        (positive(1), 5),  # clamped up to the minimum
        (positive(0), None),  # T95: a TTL of 0 is never reused
        (positive(7 * 86_400), 86_400),  # T96: clamped down to the maximum
        (positive(None), None),
        (negative(60), 60),
        (negative(3 * 3600), 900),  # capped
        (negative(None), None),  # T93: no SOA, not cached
        (negative(0), None),
        (transient(), 30),
        (v.null_mx("x.example.net", "B2", (), 600), 600),  # null MX is positive data
        (v.bad_syntax("A1", "x"), None),
    ],
)
def test_lifetimes(verdict: Verdict, expected: float | None) -> None:
    assert lifetime(verdict, POLICY) == expected


def test_transient_lifetime_never_applies_to_a_permanent_verdict() -> None:
    odd = Verdict(550, "1.2", Reason.NXDOMAIN, "B6", "x", (), Lifetime.TRANSIENT, None)
    assert lifetime(odd, POLICY) is None


# --- entries and expiry --------------------------------------------------------------------------


def test_t90_entry_lives_for_its_ttl() -> None:
    clock = FakeClock()
    cache = VerdictCache(POLICY, clock)
    cache.put("ok.example.net", positive(300))
    clock.advance(299)
    assert cache.get("ok.example.net") is not None
    clock.advance(2)
    assert cache.get("ok.example.net") is None
    assert len(cache) == 0  # dropped once past its (stale) life


def test_uncacheable_verdict_drops_an_older_entry() -> None:
    clock = FakeClock()
    cache = VerdictCache(POLICY, clock)
    cache.put("d.example.net", positive(300))
    assert cache.put("d.example.net", positive(0)) is None
    assert cache.get("d.example.net") is None


def test_transient_entry_stays_a_4xx() -> None:
    clock = FakeClock()
    cache = VerdictCache(POLICY, clock)
    cache.put("d.example.net", transient())
    clock.advance(29)
    entry = cache.get("d.example.net")
    assert entry is not None
    assert entry.verdict.code == 451
    clock.advance(1)
    assert cache.get("d.example.net") is None


def test_serve_stale_keeps_expired_positive_entries() -> None:
    clock = FakeClock()
    policy = CachePolicy(max_entries=10, serve_stale=3600, transient_ttl=30)
    cache = VerdictCache(policy, clock)
    cache.put("d.example.net", positive(60))
    cache.put("n.example.net", negative(60))
    clock.advance(61)
    assert cache.get("d.example.net") is None
    stale = cache.get_stale("d.example.net")
    assert stale is not None
    assert cache.get_stale("n.example.net") is None  # only positive verdicts go stale
    kept = cache.keep_stale("d.example.net", stale)
    assert kept.stale
    assert kept.expires_at == clock.now + 30
    assert cache.get("d.example.net") == kept
    clock.advance(3600)
    assert cache.get_stale("d.example.net") is None


def test_lru_bound_evicts_the_least_recently_used() -> None:
    clock = FakeClock()
    evicted: list[int] = []
    cache = VerdictCache(CachePolicy(max_entries=3), clock, on_evict=lambda: evicted.append(1))
    for name in ("a", "b", "c"):
        cache.put(f"{name}.example.net", positive(300))
    assert cache.get("a.example.net") is not None  # a becomes the most recently used
    cache.put("d.example.net", positive(300))
    assert cache.get("b.example.net") is None
    assert cache.get("a.example.net") is not None
    assert len(cache) == 3
    assert cache.evictions == 1
    assert evicted == [1]


# --- properties ----------------------------------------------------------------------------------

_VERDICTS = st.one_of(
    st.integers(-1, 10 * 86_400).map(positive),
    st.one_of(st.none(), st.integers(0, 86_400)).map(negative),
    st.just(transient()),
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), _VERDICTS, st.floats(0, 100_000)),
        max_size=40,
    )
)
def test_entries_never_outlive_their_clamped_ttl(
    steps: list[tuple[str, Verdict, float]],
) -> None:
    clock = FakeClock()
    cache = VerdictCache(POLICY, clock)
    stored: dict[str, tuple[float, Verdict]] = {}
    for key, verdict, wait in steps:
        entry = cache.put(key, verdict)
        if entry is None:
            stored.pop(key, None)
        else:
            stored[key] = (clock.now, verdict)
        clock.advance(wait)
        for name, (at, kept) in stored.items():
            life = lifetime(kept, POLICY)
            assert life is not None
            assert POLICY.min_ttl <= life or kept.lifetime is not Lifetime.POSITIVE
            found = cache.get(name)
            if clock.now - at >= life:
                assert found is None
            if found is not None:
                assert found.verdict.code == kept.code  # never rewritten (no 4xx → 5xx)


def test_t98_flood_of_random_domains_stays_within_the_bound() -> None:
    clock = FakeClock()
    rng = random.Random(98)
    cache = VerdictCache(CachePolicy(max_entries=1000), clock)
    for _ in range(100_000):
        name = "".join(rng.choices(string.ascii_lowercase, k=12)) + ".example.net"
        cache.put(name, negative(300))
        assert len(cache) <= 1000
    assert len(cache) == 1000
    assert cache.evictions == 99_000


# --- single-flight -------------------------------------------------------------------------------


async def test_single_flight_shares_one_task() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal started
        started += 1
        await gate.wait()
        return 42

    first, joined_first = flights.run("k", work)
    second, joined_second = flights.run("k", work)
    assert first is second
    assert (joined_first, joined_second) == (False, True)
    assert len(flights) == 1
    gate.set()
    assert list(await asyncio.wait_for(asyncio.gather(first, second), 5)) == [42, 42]
    assert started == 1
    assert len(flights) == 0
    third, joined = flights.run("k", work)
    assert not joined
    assert await asyncio.wait_for(third, 5) == 42


async def test_single_flight_aclose_cancels_running_work() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    never = asyncio.Event()

    async def work() -> int:
        await never.wait()
        return 0

    task, _ = flights.run("k", work)
    await asyncio.wait_for(flights.aclose(), 5)
    assert task.cancelled()
    assert len(flights) == 0
