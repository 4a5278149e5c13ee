"""Stages B-D driven by hand-made answers: every row of the decision table, without sockets.

The same rows run end to end against the real DNS server in test_check.py; here the generator is
fed `Answer` values directly, which pins the decision logic apart from any resolver behaviour.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.model import DnsStatus, RdType, Reason
from mxrelay.rcpt.answer import Answer, Cname, Query, Record
from mxrelay.rcpt.decide import DecideOptions, decide
from mxrelay.rcpt.verdict import Lifetime, Verdict, render

MX, A, AAAA = RdType.MX, RdType.A, RdType.AAAA
TEST_NETS = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)
OPTIONS = DecideOptions(routable_networks=TEST_NETS)
SELF_OPTIONS = DecideOptions(
    routable_networks=TEST_NETS, self_addresses=frozenset({ipaddress.ip_address("192.0.2.25")})
)
Reply_ = Callable[[Query], Answer]
Table = Mapping[tuple[str, RdType], Reply_]


def mx(*entries: str, ttl: int = 300) -> Reply_:
    def answer(query: Query) -> Answer:
        records = []
        for entry in entries:
            preference, _, host = entry.partition(" ")
            host = host if host == "." else host.rstrip(".") + "."
            records.append(Record(query.name, MX, ttl, host, int(preference)))
        return Answer(query, DnsStatus.OK, tuple(records))

    return answer


def addresses(*values: str, ttl: int = 300, via: tuple[Cname, ...] = ()) -> Reply_:
    def answer(query: Query) -> Answer:
        owner = via[-1].target if via else query.name
        records = tuple(Record(owner, query.rdtype, ttl, value) for value in values)
        return Answer(query, DnsStatus.OK, records, via)

    return answer


def negative(status: DnsStatus, ttl: int | None = 60, via: tuple[Cname, ...] = ()) -> Reply_:
    return lambda query: Answer(query, status, (), via, ttl)


def failure(status: DnsStatus = DnsStatus.SERVFAIL) -> Reply_:
    return lambda query: Answer(query, status)


NX = negative(DnsStatus.NXDOMAIN)
NODATA = negative(DnsStatus.NODATA)


def drive(
    domain: str, table: Table, options: DecideOptions = OPTIONS
) -> tuple[Verdict, list[Query]]:
    """Run decide() with answers from `table`; an unexpected query fails the test."""
    flow = decide(domain, options)
    asked: list[Query] = []
    step = next(flow)
    for _ in range(200):
        asked.append(step)
        key = (step.name.rstrip("."), step.rdtype)
        assert key in table, f"unexpected query {step}"
        try:
            step = flow.send(table[key](step))
        except StopIteration as stop:
            return stop.value, asked
    raise AssertionError("decide() did not finish within 200 queries")


def verdict_of(domain: str, table: Table, options: DecideOptions = OPTIONS) -> Verdict:
    return drive(domain, table, options)[0]


def is_(verdict: Verdict, code: int, status: str, stage: str) -> None:
    assert (verdict.code, verdict.status, verdict.stage) == (code, status, stage), verdict


D = "d.example.net"
HOST = "mx.d.example.net"


# --- Stage B -------------------------------------------------------------------------------------


def test_b1_mx_with_usable_exchange_accepts() -> None:
    verdict = verdict_of(D, {(D, MX): mx(f"10 {HOST}"), (HOST, A): addresses("192.0.2.10")})
    is_(verdict, 250, "1.5", "C1")
    assert verdict.lifetime is Lifetime.POSITIVE
    assert verdict.ttl == 300


def test_b2_null_mx_is_556_without_address_queries() -> None:
    verdict, asked = drive(D, {(D, MX): mx("0 .")})
    is_(verdict, 556, "1.10", "B2")
    assert asked == [Query(D + ".", MX)]
    assert verdict.reason is Reason.NULL_MX
    assert verdict.lifetime is Lifetime.POSITIVE  # null MX is positive data


@pytest.mark.parametrize("entries", [("10 .",), ("0 .", "0 ."), ("5 .", "10 .")])
def test_b3_non_canonical_null_mx_is_556(entries: tuple[str, ...]) -> None:
    is_(verdict_of(D, {(D, MX): mx(*entries)}), 556, "1.10", "B3")


def test_b4_null_entry_mixed_with_real_mx_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    table = {(D, MX): mx("0 .", f"10 {HOST}"), (HOST, A): addresses("192.0.2.10")}
    verdict = verdict_of(D, table)
    is_(verdict, 250, "1.5", "C1")
    assert any("(B4)" in line for line in verdict.evidence)
    assert "mixes a null MX with real MX records" in caplog.text


def test_b5_nodata_goes_to_implicit_mx() -> None:
    verdict, asked = drive(D, {(D, MX): NODATA, (D, A): addresses("192.0.2.1")})
    is_(verdict, 250, "1.5", "D1")
    assert asked == [Query(D + ".", MX), Query(D + ".", A)]


def test_b6_nxdomain_is_550_and_asks_nothing_else() -> None:
    verdict, asked = drive(D, {(D, MX): NX})
    is_(verdict, 550, "1.2", "B6")
    assert asked == [Query(D + ".", MX)]
    assert verdict.reason is Reason.NXDOMAIN
    assert (verdict.lifetime, verdict.ttl) == (Lifetime.NEGATIVE, 60)


def test_b6_nxdomain_code_450() -> None:
    options = DecideOptions(nxdomain_code=450, routable_networks=TEST_NETS)
    is_(verdict_of(D, {(D, MX): NX}, options), 450, "1.2", "B6")


def test_b6_nxdomain_through_a_cname_chain() -> None:
    chain = (Cname(D + ".", "gone.example.net.", 30),)
    verdict = verdict_of(D, {(D, MX): negative(DnsStatus.NXDOMAIN, 60, chain)})
    is_(verdict, 550, "1.2", "B6")
    assert verdict.ttl == 30  # the chain's TTL is shorter than the negative TTL


def test_b6_tolerance_accepts_nxdomain_with_addresses() -> None:
    options = DecideOptions(nxdomain_address_fallback=True, routable_networks=TEST_NETS)
    table = {(D, MX): NX, (D, A): addresses("192.0.2.1")}
    is_(verdict_of(D, table, options), 250, "1.5", "B6")
    is_(verdict_of(D, {(D, MX): NX, (D, A): NX}, options), 550, "1.2", "B6")


@pytest.mark.parametrize(
    "status", [DnsStatus.SERVFAIL, DnsStatus.REFUSED, DnsStatus.TIMEOUT, DnsStatus.ERROR]
)
def test_b7_temporary_failures_are_451_even_with_addresses(status: DnsStatus) -> None:
    verdict, asked = drive(D, {(D, MX): failure(status), (D, A): addresses("192.0.2.1")})
    is_(verdict, 451, "4.3", "B7")
    assert asked == [Query(D + ".", MX)]  # T39: the A record is not consulted
    assert verdict.lifetime is Lifetime.TRANSIENT


def test_b7_cname_loop_is_451() -> None:
    loop = (Cname(D + ".", "b.example.net.", 300), Cname("b.example.net.", D + ".", 300))
    is_(verdict_of(D, {(D, MX): negative(DnsStatus.NODATA, None, loop)}), 451, "4.3", "B7")


def test_b7_cname_chain_longer_than_the_limit_is_451() -> None:
    names = [D] + [f"c{i}.example.net" for i in range(9)]
    chain = tuple(Cname(a + ".", b + ".", 300) for a, b in itertools.pairwise(names))
    assert len(chain) == 9
    table = {(D, MX): negative(DnsStatus.NODATA, 60, chain)}
    is_(verdict_of(D, table), 451, "4.3", "B7")  # the default limit is 8
    options = DecideOptions(cname_limit=9, routable_networks=TEST_NETS)
    table = {(D, MX): NODATA, (D, A): NX}
    is_(
        verdict_of(D, {**table, (D, MX): negative(DnsStatus.NODATA, 60, chain)}, options),
        550,
        "1.2",
        "D2",
    )


def test_unfollowed_cname_is_asked_for() -> None:
    """A server that answers the CNAME without following it: the target is queried."""
    chain = (Cname(D + ".", "target.example.org.", 120),)
    table = {
        (D, MX): negative(DnsStatus.NODATA, None, chain),
        ("target.example.org", MX): mx(f"10 {HOST}"),
        (HOST, A): addresses("192.0.2.10"),
    }
    verdict, asked = drive(D, table)
    is_(verdict, 250, "1.5", "C1")
    assert asked[1] == Query("target.example.org.", MX)
    assert verdict.ttl == 120


# --- Stage C -------------------------------------------------------------------------------------


def test_c1_first_usable_exchange_wins_and_ttl_is_the_chain_minimum() -> None:
    table = {(D, MX): mx(f"10 {HOST}", ttl=3600), (HOST, A): addresses("192.0.2.10", ttl=60)}
    verdict, asked = drive(D, table)
    assert verdict.ttl == 60  # T91
    assert Query(HOST + ".", AAAA) not in asked  # a usable A is enough


@pytest.mark.parametrize("host_answer", [NX, NODATA])
def test_c2_host_without_addresses_is_unusable(host_answer: Reply_) -> None:
    table = {(D, MX): mx(f"10 {HOST}"), (HOST, A): host_answer, (HOST, AAAA): NODATA}
    verdict = verdict_of(D, table)
    is_(verdict, 550, "1.2", "C2")
    assert verdict.reason is Reason.NO_USABLE_MX


def test_c2_nxdomain_host_skips_aaaa() -> None:
    _, asked = drive(D, {(D, MX): mx(f"10 {HOST}"), (HOST, A): NX})
    assert Query(HOST + ".", AAAA) not in asked


@pytest.mark.parametrize(
    ("a", "aaaa"),
    [
        (("127.0.0.1",), ()),
        (("0.0.0.0",), ()),
        (("10.1.2.3",), ()),
        (("192.168.1.1",), ()),
        ((), ("::1",)),
        ((), ("fe80::1",)),
        ((), ("fd00::1",)),
        ((), ("::ffff:127.0.0.1",)),
    ],
)
def test_c3_only_non_routable_addresses_is_unusable(
    a: tuple[str, ...], aaaa: tuple[str, ...]
) -> None:
    table = {
        (D, MX): mx(f"10 {HOST}"),
        (HOST, A): addresses(*a) if a else NODATA,
        (HOST, AAAA): addresses(*aaaa) if aaaa else NODATA,
    }
    is_(verdict_of(D, table), 550, "1.2", "C3")


def test_c3_internal_networks_can_be_made_usable() -> None:
    table = {(D, MX): mx(f"10 {HOST}"), (HOST, A): addresses("10.1.2.3")}
    internal = (ipaddress.ip_network("10.0.0.0/8"),)
    is_(verdict_of(D, table, DecideOptions(routable_networks=internal)), 250, "1.5", "C1")


def test_c4_exchange_written_as_ip_is_unusable_unless_allowed() -> None:
    table = {(D, MX): mx("10 192.0.2.55")}
    verdict, asked = drive(D, table)
    is_(verdict, 550, "1.2", "C4")
    assert asked == [Query(D + ".", MX)]
    allowed = DecideOptions(allow_mx_ip=True, routable_networks=TEST_NETS)
    is_(verdict_of(D, table, allowed), 250, "1.5", "C4")
    # allowed, but the address is not routable: still unusable (T55's `MX 0 0.0.0.0`)
    is_(verdict_of(D, {(D, MX): mx("0 0.0.0.0")}, allowed), 550, "1.2", "C4")


def test_c5_exchange_that_is_the_relay_is_a_loop() -> None:
    options = DecideOptions(
        routable_networks=TEST_NETS, self_addresses=frozenset({ipaddress.ip_address("192.0.2.25")})
    )
    table = {(D, MX): mx(f"10 {HOST}"), (HOST, A): addresses("192.0.2.25")}
    verdict = verdict_of(D, table, options)
    is_(verdict, 550, "4.6", "C5")
    assert verdict.reason is Reason.LOOP


def test_c5_more_preferred_exchange_still_counts_and_less_preferred_are_discarded() -> None:
    options = DecideOptions(
        routable_networks=TEST_NETS, self_addresses=frozenset({ipaddress.ip_address("192.0.2.25")})
    )
    table = {
        (D, MX): mx("5 primary.example.net", f"10 {HOST}", "20 backup.example.net"),
        ("primary.example.net", A): addresses("192.0.2.1"),
        (HOST, A): addresses("192.0.2.25"),
    }
    is_(verdict_of(D, table, options), 250, "1.5", "C1")
    table = {
        (D, MX): mx(f"10 {HOST}", "20 backup.example.net"),
        (HOST, A): addresses("192.0.2.25"),
    }
    verdict, asked = drive(D, table, options)
    is_(verdict, 550, "4.6", "C5")
    assert all(q.name != "backup.example.net." for q in asked)  # discarded, never asked for


def test_unknown_addresses_beside_the_relays_own_are_temporary_not_a_loop() -> None:
    """Found by the property below: A SERVFAIL + AAAA = the relay must not become 550 5.4.6."""
    table = {(D, MX): NODATA, (D, A): failure(), (D, AAAA): addresses("192.0.2.25")}
    is_(verdict_of(D, table, SELF_OPTIONS), 451, "4.3", "D4")
    table = {(D, MX): mx(f"10 {HOST}"), (HOST, A): failure(), (HOST, AAAA): addresses("192.0.2.25")}
    is_(verdict_of(D, table, SELF_OPTIONS), 451, "4.3", "C6")


@pytest.mark.parametrize("status", [DnsStatus.SERVFAIL, DnsStatus.TIMEOUT])
def test_c6_unknown_exchange_makes_the_verdict_temporary(status: DnsStatus) -> None:
    table = {
        (D, MX): mx(f"10 {HOST}", "20 dead.example.net"),
        (HOST, A): failure(status),
        (HOST, AAAA): failure(status),
        ("dead.example.net", A): NX,
    }
    is_(verdict_of(D, table), 451, "4.3", "C6")


def test_c6_mx_limit_hit_without_a_verdict_is_451() -> None:
    hosts = [f"h{i:02d}.example.net" for i in range(20)]
    table: dict[tuple[str, RdType], Reply_] = {
        (D, MX): mx(*(f"{10 + i} {h}" for i, h in enumerate(hosts)))
    }
    for host in hosts[:-1]:
        table[(host, A)] = NX
    table[(hosts[-1], A)] = addresses("192.0.2.20")
    verdict, asked = drive(D, table)  # T62
    is_(verdict, 451, "4.3", "C6")
    assert len([q for q in asked if q.rdtype is A]) == 10


def test_c7_exchange_behind_a_cname_is_usable() -> None:
    chain = (Cname(HOST + ".", "real.example.net.", 100),)
    table = {(D, MX): mx(f"10 {HOST}"), (HOST, A): addresses("192.0.2.10", via=chain)}
    verdict = verdict_of(D, table)
    is_(verdict, 250, "1.5", "C7")
    assert verdict.ttl == 100


def test_ipv6_only_exchange_is_usable_unless_ipv6_is_off() -> None:
    table = {
        (D, MX): mx(f"10 {HOST}"),
        (HOST, A): NODATA,
        (HOST, AAAA): addresses("2001:db8::25"),
    }
    is_(verdict_of(D, table), 250, "1.5", "C1")  # T60
    no_v6 = DecideOptions(ipv6=False, routable_networks=TEST_NETS)
    verdict, asked = drive(D, table, no_v6)
    is_(verdict, 550, "1.2", "C2")
    assert all(q.rdtype is not AAAA for q in asked)


def test_t47_good_exchange_beside_an_ip_exchange_accepts() -> None:
    table = {
        (D, MX): mx("5 192.0.2.99", f"10 {HOST}"),
        (HOST, A): addresses("192.0.2.10"),
    }
    is_(verdict_of(D, table), 250, "1.5", "C1")


def test_t52_second_exchange_rescues_a_dead_first() -> None:
    table = {
        (D, MX): mx("10 dead.example.net", f"20 {HOST}"),
        ("dead.example.net", A): NX,
        (HOST, A): addresses("192.0.2.10"),
    }
    is_(verdict_of(D, table), 250, "1.5", "C1")


# --- Stage D -------------------------------------------------------------------------------------


def test_d1_routable_address_accepts() -> None:
    table = {(D, MX): NODATA, (D, A): NODATA, (D, AAAA): addresses("2001:db8::1")}
    is_(verdict_of(D, table), 250, "1.5", "D1")  # T71


def test_d1_one_routable_address_is_enough() -> None:
    table = {(D, MX): NODATA, (D, A): addresses("127.0.0.1"), (D, AAAA): addresses("2001:db8::1")}
    is_(verdict_of(D, table), 250, "1.5", "D1")  # T73


def test_d2_no_records_at_all_is_550() -> None:
    verdict = verdict_of(D, {(D, MX): NODATA, (D, A): NODATA, (D, AAAA): NODATA})
    is_(verdict, 550, "1.2", "D2")
    assert verdict.reason is Reason.NODATA
    assert (verdict.lifetime, verdict.ttl) == (Lifetime.NEGATIVE, 60)


def test_d2_without_soa_is_not_cacheable() -> None:
    nodata_no_soa = negative(DnsStatus.NODATA, None)
    verdict = verdict_of(D, {(D, MX): nodata_no_soa, (D, A): NODATA, (D, AAAA): NODATA})
    assert verdict.ttl is None


def test_d3_only_non_routable_addresses_is_550() -> None:
    table = {(D, MX): NODATA, (D, A): NODATA, (D, AAAA): addresses("::1")}
    is_(verdict_of(D, table), 550, "1.2", "D3")  # T72


@pytest.mark.parametrize(
    ("a", "aaaa"),
    [
        (failure(), NODATA),
        (NODATA, failure(DnsStatus.TIMEOUT)),
        (addresses("127.0.0.1"), failure()),
    ],
)
def test_d4_temporary_trouble_without_a_positive_result_is_451(a: Reply_, aaaa: Reply_) -> None:
    is_(verdict_of(D, {(D, MX): NODATA, (D, A): a, (D, AAAA): aaaa}), 451, "4.3", "D4")


def test_d5_spf_is_never_consulted() -> None:
    # the table has no TXT entry: any TXT query would fail the drive
    verdict, asked = drive(D, {(D, MX): NODATA, (D, A): addresses("192.0.2.1")})
    is_(verdict, 250, "1.5", "D1")
    assert {q.rdtype for q in asked} <= {MX, A, AAAA}


# --- properties of decide --------------------------------------------------------------------------

_HOSTS = ["h1.example.net", "h2.example.net", "h3.example.org", "192.0.2.77", "."]
_ADDRS = ["192.0.2.10", "127.0.0.1", "10.0.0.1", "2001:db8::5", "::1", "192.0.2.25"]
_FAILURES = [DnsStatus.SERVFAIL, DnsStatus.REFUSED, DnsStatus.TIMEOUT, DnsStatus.ERROR]


def _answer_strategy(rdtype: RdType) -> st.SearchStrategy[Reply_]:
    definite = st.one_of(
        st.just(NX),
        st.just(NODATA),
        st.just(negative(DnsStatus.NODATA, None)),
        st.lists(st.sampled_from(_ADDRS), min_size=1, max_size=3).map(
            lambda values: addresses(*values)
        ),
    )
    return st.one_of(definite, st.sampled_from(_FAILURES).map(failure))


@st.composite
def worlds(draw: st.DrawFn) -> dict[tuple[str, RdType], Reply_]:
    exchanges = draw(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(_HOSTS)), max_size=5))
    mx_answer = draw(
        st.one_of(
            st.just(mx(*(f"{p} {h}" for p, h in exchanges))) if exchanges else st.just(NODATA),
            st.just(NX),
            st.just(NODATA),
            st.sampled_from(_FAILURES).map(failure),
        )
    )
    table: dict[tuple[str, RdType], Reply_] = {(D, MX): mx_answer}
    for name in [D, *_HOSTS[:3]]:
        for rdtype in (A, AAAA):
            table[(name, rdtype)] = draw(_answer_strategy(rdtype))
    return table


@given(worlds())
def test_a_transient_answer_never_becomes_a_5xx(table: dict[tuple[str, RdType], Reply_]) -> None:
    received: list[Answer] = []

    def recording(reply: Reply_) -> Reply_:
        def answer(query: Query) -> Answer:
            received.append(reply(query))
            return received[-1]

        return answer

    verdict, asked = drive(D, {key: recording(value) for key, value in table.items()}, SELF_OPTIONS)
    rendered = render(verdict, f"u@{D}", smtputf8=False).reply
    assert rendered.enhanced.split(".")[0] == str(rendered.code)[0]
    if any(answer.status.transient for answer in received):
        assert verdict.code < 500, (verdict, received)
    if received[0].status.transient:
        assert verdict.code == 451
    assert len(asked) <= 2 + 2 * SELF_OPTIONS.mx_limit
