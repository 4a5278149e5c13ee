"""RecipientChecker end to end against the real DNS server: every decision-table row and the
T01-T75 cases of recipient-validation.md, with the exact reply strings the spec pins.

Cache behaviour is in test_check_cache.py, policies in test_policy.py.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from mxrelay.dns.check import RecipientChecker, explain
from mxrelay.model import Reason, RecipientVerdict
from tests.dns.conftest import CheckerFactory, settings_for
from tests.support.dns_server import DnsServer, Fault

NOT_FOUND = "Recipient address rejected: Domain not found (Bad destination mailbox address)"


def well_formed(verdict: RecipientVerdict, shown: str) -> None:
    """T112: the enhanced class equals the code's first digit, and the text names the address."""
    reply = verdict.reply
    assert reply.enhanced.split(".")[0] == str(reply.code)[0]
    assert f"<{shown}>" in reply.text


async def reply_of(checker: RecipientChecker, path: str, smtputf8: bool = False) -> str:
    verdict = await checker.check(path, smtputf8)
    well_formed(verdict, verdict.reply.text.split(">:")[0][1:])
    return str(verdict.reply)


def ok_mx(server: DnsServer, domain: str, address: str = "192.0.2.10") -> None:
    server.mx(domain, f"10 mx.{domain}")
    server.a(f"mx.{domain}", address)


# --- Stage A: refused without DNS ----------------------------------------------------------------

STAGE_A = [
    (
        "<user@exa..mple.net>",
        "501 5.1.3 <user@exa..mple.net>: Bad recipient address syntax (empty label)",
    ),
    (
        "<user@-x.example.net>",
        "501 5.1.3 <user@-x.example.net>: Bad recipient address syntax "
        "(hyphen at the start or end of a label)",
    ),
    (
        "<user@x-.example.net>",
        "501 5.1.3 <user@x-.example.net>: Bad recipient address syntax "
        "(hyphen at the start or end of a label)",
    ),
    (
        "<user@exa_mple.net>",
        "501 5.1.3 <user@exa_mple.net>: Bad recipient address syntax (underscore in domain)",
    ),
    (
        "<user@ok.example.net.>",
        "501 5.1.3 <user@ok.example.net.>: Bad recipient address syntax (trailing dot)",
    ),
    (
        f"<user@{'a' * 64}.example.net>",
        f"501 5.1.3 <user@{'a' * 64}.example.net>: Bad recipient address syntax (label too long)",
    ),
    ("<>", "501 5.1.3 <>: Bad recipient address syntax (empty path)"),
    ("<Postmaster>", "250 2.1.5 <Postmaster>: Recipient ok"),
    ("<POSTMASTER>", "250 2.1.5 <POSTMASTER>: Recipient ok"),
    (
        "<user@intranet>",
        "550 5.1.2 <user@intranet>: Recipient address rejected: "
        "Domain name is not fully qualified (Bad destination mailbox address)",
    ),
    (
        "<user@localhost>",
        "550 5.1.2 <user@localhost>: Recipient address rejected: "
        "Domain name is not fully qualified (Bad destination mailbox address)",
    ),
    (
        "<u@x.invalid>",
        "550 5.1.2 <u@x.invalid>: Recipient address rejected: "
        "Domain x.invalid is a special-use name and receives no mail (Bad destination mailbox address)",
    ),
    (
        "<u@x.test>",
        "550 5.1.2 <u@x.test>: Recipient address rejected: "
        "Domain x.test is a special-use name and receives no mail (Bad destination mailbox address)",
    ),
    (
        "<u@x.onion>",
        "550 5.1.2 <u@x.onion>: Recipient address rejected: "
        "Domain x.onion is a special-use name and receives no mail (Bad destination mailbox address)",
    ),
    (
        "<u@printer.local>",
        "550 5.1.2 <u@printer.local>: Recipient address rejected: Domain printer.local is a "
        "special-use name and receives no mail (Bad destination mailbox address)",
    ),
    (
        "<user@10.0.0.1>",
        "550 5.1.2 <user@10.0.0.1>: Recipient address rejected: "
        "Domain 10.0.0.1 is a special-use name and receives no mail (Bad destination mailbox address)",
    ),
    (
        "<user@[127.0.0.1]>",
        "550 5.1.2 <user@[127.0.0.1]>: Recipient address rejected: "
        "Address literal is not globally routable (Bad destination mailbox address)",
    ),
    (
        "<user@[IPv6:::1]>",
        "550 5.1.2 <user@[IPv6:::1]>: Recipient address rejected: "
        "Address literal is not globally routable (Bad destination mailbox address)",
    ),
    (
        "<user@[10.1.2.3]>",
        "550 5.1.2 <user@[10.1.2.3]>: Recipient address rejected: "
        "Address literal is not globally routable (Bad destination mailbox address)",
    ),
    (
        "<user@[300.1.1.1]>",
        "501 5.1.3 <user@[300.1.1.1]>: Bad recipient address syntax (bad address literal)",
    ),
    (
        "<user@[IPv6:zz::1]>",
        "501 5.1.3 <user@[IPv6:zz::1]>: Bad recipient address syntax (bad address literal)",
    ),
    (
        "<user@[8.8.8.8]>",
        "550 5.7.1 <user@[8.8.8.8]>: Recipient address rejected: Address literals are not accepted",
    ),
    (
        "<user@bücher.example.net>",
        r"553 5.6.7 <user@b\xfccher.example.net>: Must declare SMTPUTF8 to send unicode address",
    ),
]


@pytest.mark.parametrize(("path", "expected"), STAGE_A)
async def test_stage_a_replies_without_dns(
    checker: RecipientChecker, dns_server: DnsServer, path: str, expected: str
) -> None:
    dns_server.mx("intranet.example.net", "10 mx.example.net")  # T13: a search list would find it
    verdict = await checker.check(path, False)
    assert str(verdict.reply) == expected
    assert dns_server.queries == []
    assert not verdict.cached


async def test_t07_path_too_long(checker: RecipientChecker, dns_server: DnsServer) -> None:
    local = "x" * 250
    verdict = await checker.check(f"<{local}@ok.example.net>", False)
    assert (verdict.reply.code, verdict.reply.enhanced, verdict.stage) == (501, "5.1.3", "A2")
    assert verdict.reply.text.endswith(": Bad recipient address syntax (path too long)")
    assert dns_server.queries == []


async def test_t24_emoji_domain(checker: RecipientChecker, dns_server: DnsServer) -> None:
    verdict = await checker.check("<user@👍.example.net>", True)
    assert str(verdict.reply) == (
        "501 5.1.3 <user@👍.example.net>: Bad recipient address syntax "
        "(invalid internationalised domain)"
    )
    assert dns_server.queries == []


async def test_t14_test_tld_allowed_in_a_lab(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.zone("test")
    ok_mx(dns_server, "lab.test")
    checker = make_checker(MXRELAY_DNS_ALLOW_TEST_TLD="true")
    assert await reply_of(checker, "<u@lab.test>") == "250 2.1.5 <u@lab.test>: Recipient ok"


async def test_t18_public_literal_accepted_when_allowed(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    checker = make_checker(MXRELAY_DNS_ALLOW_ADDRESS_LITERALS="true")
    verdict = await checker.check("<user@[8.8.8.8]>", False)
    assert str(verdict.reply) == "250 2.1.5 <user@[8.8.8.8]>: Recipient ok"
    assert verdict.mailbox == "user@[8.8.8.8]"
    assert dns_server.queries == []


async def test_t19_trusted_domain_needs_no_dns(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    checker = make_checker(MXRELAY_DNS_TRUSTED_DOMAINS="corp.example.net")
    for path in ("<a@corp.example.net>", "<b@mail.corp.example.net>"):
        verdict = await checker.check(path, False)
        assert verdict.accepted
        assert verdict.stage == "trusted"
    assert dns_server.queries == []


# --- SMTPUTF8 and IDN ----------------------------------------------------------------------------


async def test_t21_t25_idn_is_looked_up_as_its_a_label_and_shares_the_cache(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    ok_mx(dns_server, "xn--bcher-kva.example.net")
    verdict = await checker.check("<user@bücher.example.net>", True)
    assert str(verdict.reply) == "250 2.1.5 <user@bücher.example.net>: Recipient ok"
    assert verdict.domain == "xn--bcher-kva.example.net"
    assert verdict.mailbox == "user@bücher.example.net"
    assert [q.name for q in dns_server.queries if q.rdtype == "MX"] == [
        "xn--bcher-kva.example.net."
    ]
    again = await checker.check("<user@xn--bcher-kva.example.net>", False)  # T25
    assert again.accepted
    assert again.cached
    assert len(dns_server.queries_for("xn--bcher-kva.example.net", "MX")) == 1


async def test_t26_mixed_case_is_one_lowercase_query(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    ok_mx(dns_server, "ok.example.net")
    verdict = await checker.check("<User@Ok.Example.NET>", False)
    assert str(verdict.reply) == "250 2.1.5 <User@Ok.Example.NET>: Recipient ok"
    assert verdict.mailbox == "User@ok.example.net"
    assert [(q.name, q.rdtype) for q in dns_server.queries] == [
        ("ok.example.net.", "MX"),
        ("mx.ok.example.net.", "A"),
    ]


@pytest.mark.parametrize("local", ['"john doe"', r'"a\"b"', "x" * 100])
async def test_t06_t08_local_part_is_not_judged(
    checker: RecipientChecker, dns_server: DnsServer, local: str
) -> None:
    ok_mx(dns_server, "ok.example.net")
    verdict = await checker.check(f"<{local}@ok.example.net>", False)
    assert verdict.accepted
    assert verdict.mailbox == f"{local}@ok.example.net"


async def test_source_route_is_stripped(checker: RecipientChecker, dns_server: DnsServer) -> None:
    ok_mx(dns_server, "ok.example.net")
    verdict = await checker.check("<@relay.example.org,@b.example.org:User@ok.example.net>", False)
    assert str(verdict.reply) == "250 2.1.5 <User@ok.example.net>: Recipient ok"
    assert verdict.mailbox == "User@ok.example.net"
    assert {q.name for q in dns_server.queries} == {"ok.example.net.", "mx.ok.example.net."}


# --- Stage B -------------------------------------------------------------------------------------


async def test_t30_mx_with_routable_host(checker: RecipientChecker, dns_server: DnsServer) -> None:
    ok_mx(dns_server, "ok.example.net")
    verdict = await checker.check("<user@ok.example.net>", False)
    assert str(verdict.reply) == "250 2.1.5 <user@ok.example.net>: Recipient ok"
    assert (verdict.reason, verdict.stage, verdict.domain) == (Reason.OK, "C1", "ok.example.net")
    assert "ok.example.net. 300 MX 10 mx.ok.example.net." in "\n".join(verdict.evidence)
    assert "mx.ok.example.net. 300 A 192.0.2.10" in "\n".join(verdict.evidence)


async def test_t31_nxdomain_is_550_without_address_queries(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    verdict = await checker.check("<user@nx.example.net>", False)
    assert str(verdict.reply) == f"550 5.1.2 <user@nx.example.net>: {NOT_FOUND}"
    assert (verdict.reason, verdict.stage) == (Reason.NXDOMAIN, "B6")
    assert [q.rdtype for q in dns_server.queries] == ["MX"]


async def test_nxdomain_code_450(make_checker: CheckerFactory) -> None:
    checker = make_checker(MXRELAY_NXDOMAIN_CODE="450")
    verdict = await checker.check("<user@nx.example.net>", False)
    assert str(verdict.reply) == f"450 4.1.2 <user@nx.example.net>: {NOT_FOUND}"


async def test_t32_nxdomain_with_an_a_record(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.a("broken.example.net", "192.0.2.30")
    dns_server.fault("broken.example.net", Fault.NXDOMAIN, "MX")
    strict = await make_checker().check("<u@broken.example.net>", False)
    assert str(strict.reply) == f"550 5.1.2 <u@broken.example.net>: {NOT_FOUND}"
    tolerant = make_checker(MXRELAY_DNS_NXDOMAIN_ADDRESS_FALLBACK="true")
    assert (await tolerant.check("<u@broken.example.net>", False)).accepted


async def test_t33_only_txt_is_550(checker: RecipientChecker, dns_server: DnsServer) -> None:
    dns_server.txt("txt.example.net", "v=spf1 -all")
    verdict = await checker.check("<user@txt.example.net>", False)
    assert str(verdict.reply) == (
        "550 5.1.2 <user@txt.example.net>: Recipient address rejected: "
        "Domain has no MX or address records (Bad destination mailbox address)"
    )
    assert (verdict.reason, verdict.stage) == (Reason.NODATA, "D2")


@pytest.mark.parametrize(("entries", "stage"), [(("0 .",), "B2"), (("10 .",), "B3")])
async def test_t34_t35_t36_null_mx_is_556_without_address_queries(
    checker: RecipientChecker, dns_server: DnsServer, entries: tuple[str, ...], stage: str
) -> None:
    dns_server.mx("null.example.net", *entries)
    dns_server.a("null.example.net", "192.0.2.40", "2001:db8::40")
    verdict = await checker.check("<user@null.example.net>", False)
    assert str(verdict.reply) == (
        "556 5.1.10 <user@null.example.net>: Recipient address rejected: "
        "Domain null.example.net does not accept mail (nullMX)"
    )
    assert (verdict.reason, verdict.stage) == (Reason.NULL_MX, stage)
    assert [q.rdtype for q in dns_server.queries] == ["MX"]


async def test_t37_null_entry_mixed_with_real_mx_is_ignored_with_a_warning(
    checker: RecipientChecker, dns_server: DnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.mx("mixed.example.net", "0 .", "10 mx.ok.example.net")
    dns_server.a("mx.ok.example.net", "192.0.2.10")
    verdict = await checker.check("<user@mixed.example.net>", False)
    assert str(verdict.reply) == "250 2.1.5 <user@mixed.example.net>: Recipient ok"
    assert "mixes a null MX with real MX records" in caplog.text


async def test_t38_preference_zero_real_host_is_not_null_mx(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.mx("zero.example.net", "0 mx.ok.example.net")
    dns_server.a("mx.ok.example.net", "192.0.2.10")
    assert (await checker.check("<user@zero.example.net>", False)).accepted


TEMPFAIL = (
    "451 4.4.3 <user@{0}>: Recipient address rejected: "
    "Temporary DNS failure looking up {0}; try again later"
)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.SERVFAIL,  # T39, and T46: a validating resolver answers SERVFAIL for bogus data
        Fault.REFUSED,  # T41
        Fault.FORMERR,
        Fault.NOTIMP,
        Fault.GARBAGE,
        Fault.TRUNCATE_TCP_FAIL,
    ],
)
async def test_t39_t41_t46_temporary_failures_are_451(
    checker: RecipientChecker, dns_server: DnsServer, fault: Fault
) -> None:
    dns_server.a("sf.example.net", "192.0.2.50")
    dns_server.fault("sf.example.net", fault, "MX")
    verdict = await checker.check("<user@sf.example.net>", False)
    assert str(verdict.reply) == TEMPFAIL.format("sf.example.net")
    assert (verdict.reason, verdict.stage) == (Reason.TEMPFAIL, "B7")
    assert "A" not in {q.rdtype for q in dns_server.queries}


async def test_truncated_answer_is_completed_over_tcp(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    ok_mx(dns_server, "tc.example.net")
    dns_server.fault("tc.example.net", Fault.TRUNCATE, "MX")
    assert (await checker.check("<user@tc.example.net>", False)).accepted
    assert [q.transport for q in dns_server.queries_for("tc.example.net", "MX")] == ["udp", "tcp"]


async def test_t40_query_timeout_is_451_within_the_budget(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.fault("slow.example.net", Fault.DROP)
    checker = make_checker(MXRELAY_DNS_QUERY_TIMEOUT="0.3s", MXRELAY_DNS_RCPT_TIMEOUT="2s")
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = await checker.check("<user@slow.example.net>", False)
    elapsed = loop.time() - started
    assert str(verdict.reply) == TEMPFAIL.format("slow.example.net")
    assert verdict.stage == "B7"
    assert 0.29 <= elapsed < 0.3 + 0.25


async def test_b8_rcpt_budget_is_451(make_checker: CheckerFactory, dns_server: DnsServer) -> None:
    ok_mx(dns_server, "slow.example.net")
    dns_server.late("slow.example.net", 0.2)
    dns_server.late("mx.slow.example.net", 0.2)
    checker = make_checker(MXRELAY_DNS_QUERY_TIMEOUT="0.3s", MXRELAY_DNS_RCPT_TIMEOUT="0.3s")
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = await checker.check("<user@slow.example.net>", False)
    elapsed = loop.time() - started
    assert str(verdict.reply) == TEMPFAIL.format("slow.example.net")
    assert (verdict.reason, verdict.stage) == (Reason.TEMPFAIL, "B8")
    assert "per-RCPT DNS budget of 0.3s exhausted (B8)" in verdict.evidence
    assert "MX slow.example.net.: ok" in verdict.evidence[0]  # what was learnt is kept
    assert 0.29 <= elapsed < 0.3 + 0.25


async def test_t44_cname_to_nxdomain_is_550(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.cname("alias.example.net", "gone.example.org")
    verdict = await checker.check("<user@alias.example.net>", False)
    assert str(verdict.reply) == f"550 5.1.2 <user@alias.example.net>: {NOT_FOUND}"


async def test_t45_cname_loop_is_451(checker: RecipientChecker, dns_server: DnsServer) -> None:
    dns_server.cname("loop1.example.net", "loop2.example.net")
    dns_server.cname("loop2.example.net", "loop1.example.net")
    verdict = await checker.check("<user@loop1.example.net>", False)
    assert str(verdict.reply) == TEMPFAIL.format("loop1.example.net")
    assert any("CNAME loop" in line for line in verdict.evidence)


async def test_t45_cname_chain_over_the_limit_is_451(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    names = [f"hop{i}.example.net" for i in range(11)]
    for current, target in itertools.pairwise(names):
        dns_server.cname(current, target)
    ok_mx(dns_server, names[-1])
    verdict = await make_checker().check(f"<user@{names[0]}>", False)  # 10 hops > 8
    assert str(verdict.reply) == TEMPFAIL.format(names[0])
    assert any("CNAME chain longer than 8" in line for line in verdict.evidence)
    assert (
        await make_checker(MXRELAY_DNS_CNAME_LIMIT="10").check(f"<u@{names[0]}>", False)
    ).accepted


async def test_cname_left_unfollowed_by_the_server_is_followed(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.cname("auth.example.net", "target.example.org")
    ok_mx(dns_server, "target.example.org")
    dns_server.fault("auth.example.net", Fault.NO_CHASE, "MX")
    assert (await checker.check("<user@auth.example.net>", False)).accepted
    assert dns_server.queries_for("target.example.org", "MX")


async def test_t47_good_mx_beside_an_ip_exchange(
    checker: RecipientChecker, dns_server: DnsServer
) -> None:
    dns_server.mx("t47.example.net", "5 192.0.2.99", "10 mx.ok.example.net")
    dns_server.a("mx.ok.example.net", "192.0.2.10")
    assert (await checker.check("<user@t47.example.net>", False)).accepted


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
