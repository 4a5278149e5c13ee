"""Verdict caching end to end (T90-T100): real DNS traffic, an injected clock, and the cache
metrics; single-flight of concurrent lookups; closing the checker while lookups run."""

from __future__ import annotations

import asyncio
import random
import string

from mxrelay.metrics import Metrics
from mxrelay.rcpt.check import RecipientChecker
from tests.rcpt.conftest import CheckerFactory
from tests.support.clocks import FakeClock
from tests.support.dns_server import DnsServer, Fault


def mx_queries(server: DnsServer, domain: str) -> int:
    return len(server.queries_for(domain, "MX"))


def cache_requests(metrics: Metrics, result: str) -> float | None:
    return metrics.registry.get_sample_value("mxrelay_dns_cache_requests_total", {"result": result})


async def test_t90_verdict_reused_within_its_ttl_then_asked_again(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("ok.example.net", "10 mx.ok.example.net", ttl=300)
    dns_server.a("mx.ok.example.net", "192.0.2.10", ttl=300)
    metrics = Metrics()
    checker = make_checker(clock=clock, metrics=metrics)
    first = await checker.check("<a@ok.example.net>", False)
    assert not first.cached
    clock.advance(299)
    second = await checker.check("<b@ok.example.net>", False)
    assert second.cached
    assert str(second.reply) == "250 2.1.5 <b@ok.example.net>: Recipient ok"  # its own address
    assert mx_queries(dns_server, "ok.example.net") == 1
    clock.advance(2)
    third = await checker.check("<c@ok.example.net>", False)
    assert not third.cached
    assert mx_queries(dns_server, "ok.example.net") == 2
    assert cache_requests(metrics, "hit") == 1
    assert cache_requests(metrics, "miss") == 2
    assert metrics.registry.get_sample_value("mxrelay_dns_cache_entries") == 1


async def test_t91_shortest_ttl_of_the_chain_decides(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("ok.example.net", "10 mx.ok.example.net", ttl=3600)
    dns_server.a("mx.ok.example.net", "192.0.2.10", ttl=60)
    checker = make_checker(clock=clock)
    await checker.check("<a@ok.example.net>", False)
    clock.advance(59)
    assert (await checker.check("<a@ok.example.net>", False)).cached
    clock.advance(2)
    assert not (await checker.check("<a@ok.example.net>", False)).cached


async def test_short_positive_ttl_is_raised_to_the_minimum(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("ok.example.net", "10 mx.ok.example.net", ttl=1)
    dns_server.a("mx.ok.example.net", "192.0.2.10", ttl=1)
    checker = make_checker(clock=clock)
    await checker.check("<a@ok.example.net>", False)
    clock.advance(4)
    assert (await checker.check("<a@ok.example.net>", False)).cached
    clock.advance(2)
    assert not (await checker.check("<a@ok.example.net>", False)).cached


async def test_t95_ttl_zero_is_never_reused(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("zero.example.net", "10 mx.zero.example.net", ttl=0)
    dns_server.a("mx.zero.example.net", "192.0.2.10", ttl=300)
    checker = make_checker(clock=clock)
    for _ in range(3):
        verdict = await checker.check("<a@zero.example.net>", False)
        assert verdict.accepted
        assert not verdict.cached
    assert mx_queries(dns_server, "zero.example.net") == 3


async def test_t96_long_ttl_is_clamped_to_the_maximum(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    week = 7 * 86_400
    dns_server.mx("long.example.net", "10 mx.long.example.net", ttl=week)
    dns_server.a("mx.long.example.net", "192.0.2.10", ttl=week)
    checker = make_checker(clock=clock, MXRELAY_DNS_CACHE_MAX_TTL="1h")
    await checker.check("<a@long.example.net>", False)
    clock.advance(3599)
    assert (await checker.check("<a@long.example.net>", False)).cached
    clock.advance(2)
    assert not (await checker.check("<a@long.example.net>", False)).cached


async def test_entries_gauge_follows_expiry(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    metrics = Metrics()
    checker = make_checker(clock=clock, metrics=metrics)
    await checker.check("<a@gone.example.net>", False)  # negative, 60 s
    assert metrics.registry.get_sample_value("mxrelay_dns_cache_entries") == 1
    dns_server.fault("gone.example.net", Fault.NXDOMAIN_NO_SOA)  # the next answer is uncacheable
    clock.advance(61)
    await checker.check("<a@gone.example.net>", False)
    assert metrics.registry.get_sample_value("mxrelay_dns_cache_entries") == 0


async def test_negative_verdict_lives_for_the_soa_minimum_capped(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.zone("example.net", soa_ttl=3600, soa_minimum=600)
    checker = make_checker(clock=clock, MXRELAY_DNS_NEGATIVE_MAX_TTL="5m")
    await checker.check("<a@nx.example.net>", False)
    clock.advance(299)
    cached = await checker.check("<a@nx.example.net>", False)
    assert cached.cached
    assert cached.reply.code == 550
    clock.advance(2)
    assert not (await checker.check("<a@nx.example.net>", False)).cached
    assert mx_queries(dns_server, "nx.example.net") == 2


async def test_newly_registered_domain_passes_once_the_negative_entry_expires(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    checker = make_checker(clock=clock)  # the zone's SOA minimum is 60 s
    assert (await checker.check("<a@new.example.net>", False)).reply.code == 550
    dns_server.mx("new.example.net", "10 mx.new.example.net")
    dns_server.a("mx.new.example.net", "192.0.2.10")
    clock.advance(59)
    assert (await checker.check("<a@new.example.net>", False)).reply.code == 550
    clock.advance(2)
    assert (await checker.check("<a@new.example.net>", False)).accepted


async def test_t93_nxdomain_without_soa_is_not_cached(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.fault("nosoa.example.net", Fault.NXDOMAIN_NO_SOA)
    checker = make_checker(clock=clock)
    for _ in range(2):
        verdict = await checker.check("<a@nosoa.example.net>", False)
        assert verdict.reply.code == 550
        assert not verdict.cached
    assert mx_queries(dns_server, "nosoa.example.net") == 2
    assert checker.cache_stats.entries == 0


async def test_t94_transient_failure_is_cached_briefly_and_never_becomes_5xx(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("flaky.example.net", "10 mx.flaky.example.net")
    dns_server.a("mx.flaky.example.net", "192.0.2.10")
    dns_server.fault("flaky.example.net", Fault.SERVFAIL, "MX")
    checker = make_checker(clock=clock)  # transient TTL: the default 30 s
    assert (await checker.check("<a@flaky.example.net>", False)).reply.code == 451
    dns_server.clear_faults()  # the zone recovers, but the transient entry still speaks
    clock.advance(29)
    cached = await checker.check("<a@flaky.example.net>", False)
    assert (cached.reply.code, cached.reply.enhanced, cached.cached) == (451, "4.4.3", True)
    assert mx_queries(dns_server, "flaky.example.net") == 1
    clock.advance(2)
    assert (await checker.check("<a@flaky.example.net>", False)).accepted


async def test_t99_null_mx_cached_until_its_ttl_then_the_new_mx(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("moving.example.net", "0 .", ttl=60)
    checker = make_checker(clock=clock)
    assert (await checker.check("<a@moving.example.net>", False)).reply.code == 556
    dns_server.remove("moving.example.net", "MX")
    dns_server.mx("moving.example.net", "10 mx.moving.example.net", ttl=60)
    dns_server.a("mx.moving.example.net", "192.0.2.10")
    clock.advance(59)
    assert (await checker.check("<a@moving.example.net>", False)).reply.code == 556
    clock.advance(2)
    assert (await checker.check("<a@moving.example.net>", False)).accepted


async def test_t100_serve_stale_then_451(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("stale.example.net", "10 mx.stale.example.net", ttl=60)
    dns_server.a("mx.stale.example.net", "192.0.2.10", ttl=60)
    metrics = Metrics()
    checker = make_checker(clock=clock, metrics=metrics, MXRELAY_DNS_SERVE_STALE="10m")
    assert (await checker.check("<a@stale.example.net>", False)).accepted
    dns_server.fault("stale.example.net", Fault.SERVFAIL, "MX")
    clock.advance(61)
    stale = await checker.check("<a@stale.example.net>", False)
    assert (stale.reply.code, stale.cached) == (250, True)
    assert any("served stale" in line for line in stale.evidence)
    clock.advance(10)  # within the re-check interval (the transient TTL): no new query
    assert (await checker.check("<a@stale.example.net>", False)).accepted
    assert mx_queries(dns_server, "stale.example.net") == 2
    clock.advance(30)  # re-checked, still failing: still served stale
    assert (await checker.check("<a@stale.example.net>", False)).accepted
    assert mx_queries(dns_server, "stale.example.net") == 3
    clock.advance(600)  # past the stale window
    assert (await checker.check("<a@stale.example.net>", False)).reply.code == 451
    assert cache_requests(metrics, "stale") == 3


async def test_serve_stale_is_off_by_default(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    dns_server.mx("stale.example.net", "10 mx.stale.example.net", ttl=60)
    dns_server.a("mx.stale.example.net", "192.0.2.10", ttl=60)
    checker = make_checker(clock=clock)
    await checker.check("<a@stale.example.net>", False)
    dns_server.fault("stale.example.net", Fault.SERVFAIL, "MX")
    clock.advance(61)
    assert (await checker.check("<a@stale.example.net>", False)).reply.code == 451


async def test_t98_flood_of_random_domains_stays_within_the_lru_bound(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    metrics = Metrics()
    checker = make_checker(metrics=metrics, MXRELAY_DNS_CACHE_SIZE="50")
    rng = random.Random(98)
    for _ in range(300):
        name = "".join(rng.choices(string.ascii_lowercase, k=10))
        verdict = await checker.check(f"<u@{name}.example.net>", False)
        assert verdict.reply.code == 550
        assert checker.cache_stats.entries <= 50
    assert checker.cache_stats.entries == 50
    assert metrics.registry.get_sample_value("mxrelay_dns_cache_evictions_total") == 250
    assert metrics.registry.get_sample_value("mxrelay_dns_cache_entries") == 50


async def test_concurrent_lookups_of_one_domain_are_coalesced(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.mx("busy.example.net", "10 mx.busy.example.net")
    dns_server.a("mx.busy.example.net", "192.0.2.10")
    dns_server.late("busy.example.net", 0.1)
    metrics = Metrics()
    checker = make_checker(metrics=metrics)
    verdicts = await asyncio.gather(
        *(checker.check(f"<user{i}@busy.example.net>", False) for i in range(10))
    )
    assert [str(v.reply) for v in verdicts] == [
        f"250 2.1.5 <user{i}@busy.example.net>: Recipient ok" for i in range(10)
    ]
    assert mx_queries(dns_server, "busy.example.net") == 1
    assert cache_requests(metrics, "miss") == 1
    assert cache_requests(metrics, "coalesced") == 9
    assert any("coalesced" in line for line in verdicts[-1].evidence)


async def test_closing_the_checker_defers_waiting_recipients(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.fault("hang.example.net", Fault.DROP)
    checker = make_checker(MXRELAY_DNS_QUERY_TIMEOUT="30s", MXRELAY_DNS_RCPT_TIMEOUT="30s")
    pending = asyncio.create_task(checker.check("<a@hang.example.net>", False))
    assert await asyncio.to_thread(dns_server.wait_for_query, "hang.example.net", "MX")
    assert checker.cache_stats.in_flight == 1
    await asyncio.wait_for(checker.aclose(), 5)
    verdict = await asyncio.wait_for(pending, 5)
    assert (verdict.reply.code, verdict.reply.enhanced) == (451, "4.4.3")
    assert checker.cache_stats.in_flight == 0


async def test_last_answer_time_follows_dns_replies(
    make_checker: CheckerFactory, dns_server: DnsServer, clock: FakeClock
) -> None:
    checker: RecipientChecker = make_checker(clock=clock)
    times = [checker.last_answer_at]
    await checker.check("<a@nx.example.net>", False)
    times.append(checker.last_answer_at)
    clock.advance(10)
    await checker.check("<Postmaster>", False)  # no DNS: the time stays
    times.append(checker.last_answer_at)
    assert times == [None, clock.now - 10, clock.now - 10]
