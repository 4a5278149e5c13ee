"""RecipientChecker end to end against the real DNS server, stages C and D: the decision-table
rows C1-C7 and D1-D5 and cases T50-T75, several recipients at once (T110, T114), and `explain`.
"""

from __future__ import annotations

import asyncio

import pytest

from mxrelay.model import Reason
from mxrelay.rcpt.check import RecipientChecker, explain
from tests.rcpt.conftest import NOT_FOUND, TEMPFAIL, CheckerFactory, ok_mx, settings_for
from tests.support.dns_server import DnsServer, Fault

# --- Stage C -------------------------------------------------------------------------------------


def no_usable(domain: str) -> str:
    return (
        f"550 5.1.2 <user@{domain}>: Recipient address rejected: "
        f"No usable MX host for {domain} (Bad destination mailbox address)"
    )


async def test_t50_mx_host_nxdomain(checker: RecipientChecker, dns_server: DnsServer) -> None:
    dns_server.mx("c.example.net", "10 nohost.example.net")
    verdict = await checker.check("<user@c.example.net>", False)
    assert str(verdict.reply) == no_usable("c.example.net")
    assert (verdict.reason, verdict.stage) == (Reason.NO_USABLE_MX, "C2")


async def test_t51_mx_host_nodata(checker: RecipientChecker, dns_server: DnsServer) -> None:
    dns_server.mx("c.example.net", "10 txthost.example.net")
    dns_server.txt("txthost.example.net", "nothing")
    assert str((await checker.check("<user@c.example.net>", False)).reply) == no_usable(
        "c.example.net"
    )
    assert len(dns_server.queries_for("txthost.example.net")) == 2  # A and AAAA


async def test_t52_second_mx_rescues(checker: RecipientChecker, dns_server: DnsServer) -> None:
    dns_server.mx("c.example.net", "10 nohost.example.net", "20 mx.ok.example.net")
    dns_server.a("mx.ok.example.net", "192.0.2.10")
    assert (await checker.check("<user@c.example.net>", False)).accepted


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),  # T54
        ("0.0.0.0",),  # T55
        ("10.1.2.3",),  # T56
        ("192.168.1.1",),
        ("::1",),  # T57
        ("fe80::1",),
        ("fd00::1",),
        ("::ffff:127.0.0.1",),
    ],
)
async def test_t54_t57_only_non_routable_hosts(
    checker: RecipientChecker, dns_server: DnsServer, addresses: tuple[str, ...]
) -> None:
    dns_server.mx("c.example.net", "10 mx.c.example.net")
    dns_server.a("mx.c.example.net", *addresses)
    verdict = await checker.check("<user@c.example.net>", False)
    assert str(verdict.reply) == no_usable("c.example.net")
    assert verdict.stage == "C3"


async def test_t55_mx_zero_written_as_0_0_0_0(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.mx("c.example.net", "0 0.0.0.0")
    for checker in (make_checker(), make_checker(MXRELAY_ALLOW_MX_IP="true")):
        assert str((await checker.check("<user@c.example.net>", False)).reply) == no_usable(
            "c.example.net"
        )


async def test_t56_internal_mx_allowed_by_routable_networks(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.mx("c.example.net", "10 mx.c.example.net")
    dns_server.a("mx.c.example.net", "10.1.2.3")
    checker = make_checker(MXRELAY_DNS_ROUTABLE_NETWORKS="10.1.0.0/16")
    assert (await checker.check("<user@c.example.net>", False)).accepted


async def test_t58_mx_written_as_ip(make_checker: CheckerFactory, dns_server: DnsServer) -> None:
    dns_server.mx("c.example.net", "10 192.0.2.55")
    verdict = await make_checker().check("<user@c.example.net>", False)
    assert str(verdict.reply) == no_usable("c.example.net")
    assert verdict.stage == "C4"
    allowed = await make_checker(MXRELAY_ALLOW_MX_IP="true").check("<user@c.example.net>", False)
    assert (allowed.reply.code, allowed.stage) == (250, "C4")
    assert [q.rdtype for q in dns_server.queries] == ["MX", "MX"]


async def test_t59_mx_host_behind_cname(checker: RecipientChecker, dns_server: DnsServer) -> None:
    dns_server.mx("c.example.net", "10 alias.c.example.net")
    dns_server.cname("alias.c.example.net", "real.example.org")
    dns_server.a("real.example.org", "198.51.100.5")
    verdict = await checker.check("<user@c.example.net>", False)
    assert (verdict.reply.code, verdict.stage) == (250, "C7")


async def test_t60_ipv6_only_mx(make_checker: CheckerFactory, dns_server: DnsServer) -> None:
    dns_server.mx("c.example.net", "10 mx.c.example.net")
    dns_server.a("mx.c.example.net", "2001:db8::25")
    assert (await make_checker().check("<user@c.example.net>", False)).accepted
    no_v6 = make_checker(MXRELAY_DNS_IPV6="false")
    assert str((await no_v6.check("<user@c.example.net>", False)).reply) == no_usable(
        "c.example.net"
    )


async def test_t62_mx_cap(checker: RecipientChecker, dns_server: DnsServer) -> None:
    hosts = [f"h{i:02d}.example.net" for i in range(20)]
    dns_server.mx("many.example.net", *(f"{10 + i} {host}" for i, host in enumerate(hosts)))
    dns_server.a(hosts[-1], "192.0.2.60")
    verdict = await checker.check("<user@many.example.net>", False)
    assert str(verdict.reply) == TEMPFAIL.format("many.example.net")
    assert verdict.stage == "C6"
    assert not dns_server.queries_for(hosts[-1])
    assert len({q.name for q in dns_server.queries if q.rdtype == "A"}) == 10


async def test_c6_exchange_servfail_is_451(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.mx("c.example.net", "10 mx.c.example.net", "20 nohost.example.net")
    dns_server.fault("mx.c.example.net", Fault.SERVFAIL)
    verdict = await checker.check("<user@c.example.net>", False)
    assert str(verdict.reply) == TEMPFAIL.format("c.example.net")
    assert verdict.stage == "C6"


async def test_c5_mx_pointing_back_at_the_relay(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    ok_mx(dns_server, "loop.example.net", "192.0.2.25")
    checker = make_checker(MXRELAY_DNS_SELF_ADDRESSES="192.0.2.25,2001:db8::25")
    verdict = await checker.check("<user@loop.example.net>", False)
    assert str(verdict.reply) == (
        "550 5.4.6 <user@loop.example.net>: Recipient address rejected: "
        "Mail for loop.example.net loops back to myself"
    )
    assert (verdict.reason, verdict.stage) == (Reason.LOOP, "C5")


# --- Stage D -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addresses",
    [("192.0.2.70",), ("2001:db8::71",), ("127.0.0.1", "2001:db8::73")],  # T70, T71, T73
)
async def test_t70_t71_t73_implicit_mx(
    checker: RecipientChecker, dns_server: DnsServer, addresses: tuple[str, ...]
) -> None:
    dns_server.a("d.example.net", *addresses)
    verdict = await checker.check("<user@d.example.net>", False)
    assert (str(verdict.reply), verdict.stage) == (
        "250 2.1.5 <user@d.example.net>: Recipient ok",
        "D1",
    )


async def test_t72_implicit_mx_only_loopback(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.a("g.example.net", "::1")
    verdict = await checker.check("<user@g.example.net>", False)
    assert str(verdict.reply) == (
        "550 5.1.2 <user@g.example.net>: Recipient address rejected: "
        "Domain has no routable address (Bad destination mailbox address)"
    )
    assert verdict.stage == "D3"


async def test_d4_implicit_mx_temporary_trouble(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.txt("d.example.net", "only text")
    dns_server.fault("d.example.net", Fault.SERVFAIL, "A")
    verdict = await checker.check("<user@d.example.net>", False)
    assert str(verdict.reply) == TEMPFAIL.format("d.example.net")
    assert verdict.stage == "D4"


async def test_t75_spf_minus_all_does_not_reject(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.a("spf.example.net", "192.0.2.75")
    dns_server.txt("spf.example.net", "v=spf1 -all")
    assert (await checker.check("<user@spf.example.net>", False)).accepted
    assert "TXT" not in {q.rdtype for q in dns_server.queries}


# --- several recipients, evidence, explain -------------------------------------------------------


async def test_t110_t114_concurrent_recipients_keep_their_own_verdicts(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    ok_mx(dns_server, "ok.example.net")
    dns_server.late("ok.example.net", 0.2)  # the first lookup is the slowest
    dns_server.fault("sf.example.net", Fault.SERVFAIL)
    paths = ["<a@ok.example.net>", "<b@nx.example.net>", "<c@sf.example.net>"]
    verdicts = await asyncio.gather(*(checker.check(p, False) for p in paths))
    assert [str(v.reply) for v in verdicts] == [
        "250 2.1.5 <a@ok.example.net>: Recipient ok",
        f"550 5.1.2 <b@nx.example.net>: {NOT_FOUND}",
        TEMPFAIL.format("sf.example.net").replace("<user@", "<c@"),
    ]


async def test_explain_bypasses_the_cache_and_reads_bare_domains(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    ok_mx(dns_server, "ok.example.net")
    first = await checker.explain("ok.example.net")
    assert str(first.reply) == "250 2.1.5 <postmaster@ok.example.net>: Recipient ok"
    assert first.evidence[-1] == "stage C1; cache: bypassed"
    second = await checker.explain("user@ok.example.net")
    assert not second.cached
    assert len(dns_server.queries_for("ok.example.net", "MX")) == 2
    assert checker.cache_stats.entries == 0


async def test_one_shot_explain_for_the_command_line(dns_server: DnsServer) -> None:
    settings = settings_for(dns_server)
    verdict = await explain("nx.example.net", settings.dns, settings.policy)
    assert str(verdict.reply) == f"550 5.1.2 <postmaster@nx.example.net>: {NOT_FOUND}"
    assert any("nxdomain, negative TTL 60" in line for line in verdict.evidence)
