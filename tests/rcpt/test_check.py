"""RecipientChecker end to end against the real DNS server, stages A and B: the decision-table
rows A1-A11 and B1-B8 and cases T01-T47 of recipient-validation.md, with the exact reply strings.

Stages C and D are in test_check_hosts.py, caching in test_check_cache.py, policies in
test_policy.py. Every verdict is also held to T112 by the fixture (conftest.CheckedRecipientChecker).
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from mxrelay.config import HostPort, load_settings
from mxrelay.metrics import Metrics
from mxrelay.model import Reason
from mxrelay.rcpt.check import RecipientChecker
from tests.rcpt.conftest import NOT_FOUND, ROUTABLE_FOR_TESTS, TEMPFAIL, CheckerFactory, ok_mx
from tests.support.dns_server import DnsServer, Fault

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
    verdict = await checker.check("<u@lab.test>", False)
    assert str(verdict.reply) == "250 2.1.5 <u@lab.test>: Recipient ok"


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
    assert verdict.stage == "B7"  # the query's timeout, not the RCPT budget (B8), ended it
    assert len(dns_server.queries_for("slow.example.net", "MX")) == 1  # asked once, not again
    # The query's 0.3 s, and well inside the 2 s budget (a bound that load cannot break).
    assert 0.29 <= elapsed < 2.0


async def test_b8_rcpt_budget_is_451(make_checker: CheckerFactory, dns_server: DnsServer) -> None:
    ok_mx(dns_server, "slow.example.net")
    # The MX answer comes well inside the budget, the exchange's address well after it (each
    # query on its own is within the per-query timeout): margins that hold on a busy machine.
    dns_server.late("slow.example.net", 0.05)
    dns_server.late("mx.slow.example.net", 2.0)
    checker = make_checker(MXRELAY_DNS_QUERY_TIMEOUT="3s", MXRELAY_DNS_RCPT_TIMEOUT="0.5s")
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = await checker.check("<user@slow.example.net>", False)
    elapsed = loop.time() - started
    assert str(verdict.reply) == TEMPFAIL.format("slow.example.net")
    assert (verdict.reason, verdict.stage) == (Reason.TEMPFAIL, "B8")
    assert "per-RCPT DNS budget of 0.5s exhausted (B8)" in verdict.evidence
    assert "MX slow.example.net.: ok" in verdict.evidence[0]  # what was learnt is kept
    assert 0.49 <= elapsed < 2.0  # the 0.5 s budget, not the answer 2 s late, ended the check


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


async def test_without_configured_servers_the_system_resolvers_are_asked(
    dns_server: DnsServer,
) -> None:
    """MXRELAY_DNS_SERVERS empty: the system resolver's name servers (injected here) are used."""
    ok_mx(dns_server, "ok.example.net")
    settings = load_settings({"MXRELAY_DNS_ROUTABLE_NETWORKS": ROUTABLE_FOR_TESTS})
    assert settings.dns.servers == ()
    async with RecipientChecker(
        settings.dns,
        settings.policy,
        Metrics(),
        nameservers=lambda: [HostPort("127.0.0.1", dns_server.port)],
    ) as checker:
        assert (await checker.check("<user@ok.example.net>", False)).accepted
    assert dns_server.queries_for("ok.example.net", "MX")
