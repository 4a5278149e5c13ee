"""The resolver against the real DNS server: RCODE mapping, SOA lifetimes, TC → TCP, timeouts,
retransmission, several servers, and what it reports (metrics, last answer time)."""

from __future__ import annotations

import asyncio

import pytest

from mxrelay.config import HostPort
from mxrelay.metrics import Metrics
from mxrelay.model import DnsStatus, RdType
from mxrelay.rcpt.answer import Answer, Query
from mxrelay.rcpt.resolver import RETRANSMIT_INTERVAL, Resolver, system_nameservers
from tests.support.clocks import FakeClock
from tests.support.dns_server import DnsServer, Fault

MX, A, AAAA = RdType.MX, RdType.A, RdType.AAAA


def server_of(dns: DnsServer) -> HostPort:
    return HostPort("127.0.0.1", dns.port)


async def ask(
    dns: DnsServer,
    name: str,
    rdtype: RdType = MX,
    budget: float = 1.0,
    metrics: Metrics | None = None,
) -> Answer:
    resolver = Resolver([server_of(dns)], metrics or Metrics())
    return await resolver.query(Query(name, rdtype), budget)


async def test_mx_records_and_their_ttl(dns_server: DnsServer) -> None:
    dns_server.mx("ok.example.net", "10 mx1.ok.example.net", "20 mx2.ok.example.net", ttl=120)
    answer = await ask(dns_server, "ok.example.net.")
    assert answer.status is DnsStatus.OK
    assert sorted((r.preference, r.data, r.ttl) for r in answer.records) == [
        (10, "mx1.ok.example.net.", 120),
        (20, "mx2.ok.example.net.", 120),
    ]
    assert answer.ttl == 120
    assert answer.source.startswith("udp 127.0.0.1:")
    assert dns_server.queries_for("ok.example.net", "MX")[0].transport == "udp"


async def test_null_mx_exchange_is_the_root(dns_server: DnsServer) -> None:
    dns_server.mx("null.example.net", "0 .")
    answer = await ask(dns_server, "null.example.net.")
    assert [(r.preference, r.data) for r in answer.records] == [(0, ".")]


async def test_mixed_case_query_is_answered_in_lowercase(dns_server: DnsServer) -> None:
    dns_server.a("host.example.net", "192.0.2.1", "2001:db8::1")
    answer = await ask(dns_server, "Host.Example.NET.", A)
    assert [r.data for r in answer.records] == ["192.0.2.1"]
    answer = await ask(dns_server, "host.example.net.", AAAA)
    assert [r.data for r in answer.records] == ["2001:db8::1"]


@pytest.mark.parametrize(
    ("soa_ttl", "minimum", "expected"), [(300, 60, 60), (30, 600, 30), (3600, 3600, 3600)]
)
async def test_nxdomain_negative_ttl_is_min_of_soa_ttl_and_minimum(
    dns_server: DnsServer, soa_ttl: int, minimum: int, expected: int
) -> None:
    dns_server.zone("example.net", soa_ttl=soa_ttl, soa_minimum=minimum)
    answer = await ask(dns_server, "missing.example.net.")
    assert (answer.status, answer.negative_ttl) == (DnsStatus.NXDOMAIN, expected)


async def test_nodata_carries_the_soa_lifetime(dns_server: DnsServer) -> None:
    dns_server.txt("txtonly.example.net", "hello")
    answer = await ask(dns_server, "txtonly.example.net.")
    assert (answer.status, answer.negative_ttl) == (DnsStatus.NODATA, 60)


async def test_empty_non_terminal_is_nodata(dns_server: DnsServer) -> None:
    dns_server.a("deep.under.example.net", "192.0.2.1")
    assert (await ask(dns_server, "under.example.net.")).status is DnsStatus.NODATA


@pytest.mark.parametrize(
    ("fault", "status", "negative_ttl"),
    [
        (Fault.NXDOMAIN, DnsStatus.NXDOMAIN, 60),
        (Fault.NXDOMAIN_NO_SOA, DnsStatus.NXDOMAIN, None),
        (Fault.NODATA, DnsStatus.NODATA, 60),
        (Fault.NODATA_NO_SOA, DnsStatus.NODATA, None),
        (Fault.SERVFAIL, DnsStatus.SERVFAIL, None),
        (Fault.REFUSED, DnsStatus.REFUSED, None),
        (Fault.FORMERR, DnsStatus.ERROR, None),
        (Fault.NOTIMP, DnsStatus.ERROR, None),
        (Fault.GARBAGE, DnsStatus.ERROR, None),
        (Fault.TRUNCATE_TCP_FAIL, DnsStatus.ERROR, None),
    ],
)
async def test_rcodes_and_faults_map_to_statuses(
    dns_server: DnsServer, fault: Fault, status: DnsStatus, negative_ttl: int | None
) -> None:
    dns_server.a("f.example.net", "192.0.2.1")  # the data exists; the fault hides it
    dns_server.fault("f.example.net", fault)
    answer = await ask(dns_server, "f.example.net.", A)
    assert (answer.status, answer.negative_ttl) == (status, negative_ttl)
    assert not answer.records


async def test_names_outside_the_zones_are_refused(dns_server: DnsServer) -> None:
    assert (await ask(dns_server, "elsewhere.example.com.")).status is DnsStatus.REFUSED


async def test_truncated_udp_answer_is_asked_again_over_tcp(dns_server: DnsServer) -> None:
    dns_server.mx("tc.example.net", "10 mx.tc.example.net")
    dns_server.fault("tc.example.net", Fault.TRUNCATE, "MX")
    answer = await ask(dns_server, "tc.example.net.")
    assert answer.status is DnsStatus.OK
    assert answer.source.startswith("tcp ")
    assert [q.transport for q in dns_server.queries_for("tc.example.net")] == ["udp", "tcp"]


async def test_truncated_then_tcp_failing_is_an_error(dns_server: DnsServer) -> None:
    dns_server.mx("tc.example.net", "10 mx.tc.example.net")
    dns_server.fault("tc.example.net", Fault.TRUNCATE_TCP_FAIL, "MX")
    answer = await ask(dns_server, "tc.example.net.")
    assert answer.status is DnsStatus.ERROR
    assert "truncated over UDP, TCP failed" in answer.source


async def test_silent_server_times_out_within_the_budget(dns_server: DnsServer) -> None:
    dns_server.fault("slow.example.net", Fault.DROP)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await ask(dns_server, "slow.example.net.", budget=0.3)
    elapsed = loop.time() - started
    assert answer.status is DnsStatus.TIMEOUT
    assert len(dns_server.queries_for("slow.example.net")) == 1  # not re-asked after 1 s
    assert 0.29 <= elapsed < RETRANSMIT_INTERVAL  # the budget ended it, before any re-ask


async def test_late_answer_inside_the_budget_is_used(dns_server: DnsServer) -> None:
    dns_server.mx("late.example.net", "10 mx.example.net")
    dns_server.late("late.example.net", 0.1)
    assert (await ask(dns_server, "late.example.net.", budget=0.5)).status is DnsStatus.OK


async def test_late_answer_after_the_budget_is_a_timeout(dns_server: DnsServer) -> None:
    dns_server.mx("late.example.net", "10 mx.example.net")
    dns_server.late("late.example.net", 0.5)
    assert (await ask(dns_server, "late.example.net.", budget=0.2)).status is DnsStatus.TIMEOUT


async def test_lost_query_is_retransmitted(dns_server: DnsServer) -> None:
    dns_server.mx("lossy.example.net", "10 mx.example.net")
    dns_server.fault("lossy.example.net", Fault.DROP, times=1)
    resolver = Resolver([server_of(dns_server)], Metrics(), retransmit_interval=0.1)
    answer = await resolver.query(Query("lossy.example.net.", MX), 2.0)
    assert answer.status is DnsStatus.OK
    assert len(dns_server.queries_for("lossy.example.net")) == 2


async def test_next_server_is_asked_after_servfail() -> None:
    with DnsServer() as broken, DnsServer() as working:
        broken.fault("ok.example.net", Fault.SERVFAIL)
        working.mx("ok.example.net", "10 mx.example.net")
        resolver = Resolver([server_of(broken), server_of(working)], Metrics())
        answer = await resolver.query(Query("ok.example.net.", MX), 1.0)
        assert answer.status is DnsStatus.OK
        assert len(broken.queries) == 1
        assert len(working.queries) == 1


async def test_a_silent_first_server_gets_only_its_share_of_the_budget() -> None:
    with DnsServer() as silent, DnsServer() as working:
        silent.fault("ok.example.net", Fault.DROP)
        working.mx("ok.example.net", "10 mx.example.net")
        resolver = Resolver([server_of(silent), server_of(working)], Metrics())
        answer = await resolver.query(Query("ok.example.net.", MX), 0.6)
        assert answer.status is DnsStatus.OK


async def test_definite_answer_stops_at_the_first_server() -> None:
    with DnsServer() as first, DnsServer() as second:
        resolver = Resolver([server_of(first), server_of(second)], Metrics())
        answer = await resolver.query(Query("missing.example.net.", MX), 1.0)
        assert answer.status is DnsStatus.NXDOMAIN
        assert second.queries == []


async def test_no_servers_is_an_error() -> None:
    answer = await Resolver([], Metrics()).query(Query("ok.example.net.", MX), 0.2)
    assert answer.status is DnsStatus.ERROR


async def test_cname_chain_is_returned_in_order(dns_server: DnsServer) -> None:
    dns_server.cname("alias.example.net", "middle.example.org", ttl=40)
    dns_server.cname("middle.example.org", "real.example.net", ttl=50)
    dns_server.mx("real.example.net", "10 mx.example.net", ttl=300)
    answer = await ask(dns_server, "alias.example.net.")
    assert [(c.owner, c.target, c.ttl) for c in answer.cnames] == [
        ("alias.example.net.", "middle.example.org.", 40),
        ("middle.example.org.", "real.example.net.", 50),
    ]
    assert answer.final_name == "real.example.net."
    assert answer.ttl == 40


async def test_cname_loop_is_returned_without_hanging(dns_server: DnsServer) -> None:
    dns_server.cname("a.example.net", "b.example.net")
    dns_server.cname("b.example.net", "a.example.net")
    answer = await ask(dns_server, "a.example.net.")
    assert answer.status is DnsStatus.NODATA
    assert [c.target for c in answer.cnames] == ["b.example.net.", "a.example.net."]


async def test_query_names_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        Query("relative.example.net", MX)


async def test_metrics_and_last_answer_time(dns_server: DnsServer) -> None:
    metrics = Metrics()
    clock = FakeClock(500.0)
    resolver = Resolver([server_of(dns_server)], metrics, clock=clock, wall_clock=lambda: 1.7e9)
    times = [resolver.last_answer_at]
    dns_server.fault("sf.example.net", Fault.SERVFAIL)
    dns_server.fault("gone.example.net", Fault.DROP)
    await resolver.query(Query("sf.example.net.", MX), 0.5)
    times.append(resolver.last_answer_at)  # a SERVFAIL is still an answer
    clock.advance(5)
    await resolver.query(Query("gone.example.net.", A), 0.2)
    times.append(resolver.last_answer_at)  # silence is not
    assert times == [None, 500.0, 500.0]
    sample = metrics.registry.get_sample_value
    assert sample("mxrelay_dns_lookups_total", {"rdtype": "MX", "result": "servfail"}) == 1
    assert sample("mxrelay_dns_lookups_total", {"rdtype": "A", "result": "timeout"}) == 1
    assert sample("mxrelay_dns_last_success_timestamp_seconds") == 1.7e9
    assert sample("mxrelay_dns_lookup_duration_seconds_count", {"rdtype": "MX"}) == 1


def test_system_nameservers_are_host_port_pairs() -> None:
    for server in system_nameservers():
        assert isinstance(server, HostPort)
        assert 0 < server.port < 65536
