"""Stage A on its own: path syntax, source routes, quoting, literals, IDN and special-use names."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.model import Reason
from mxrelay.rcpt.address import AddressRules, Parsed, analyse, domain_problem
from mxrelay.rcpt.verdict import render

TEST_NET = (ipaddress.ip_network("192.0.2.0/24"),)


def needs_dns(parsed: Parsed, domain: str) -> None:
    assert parsed.verdict is None, parsed.verdict
    assert parsed.domain == domain


def decided(parsed: Parsed, code: int, status: str, stage: str) -> None:
    assert parsed.verdict is not None
    assert (parsed.verdict.code, parsed.verdict.status, parsed.verdict.stage) == (
        code,
        status,
        stage,
    )


# --- A1, A2: syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("<user@exa..mple.net>", "empty label"),  # T01
        ("<user@-x.example.net>", "hyphen at the start or end of a label"),
        ("<user@x-.example.net>", "hyphen at the start or end of a label"),
        ("<user@exa_mple.net>", "underscore in domain"),  # T02
        ("<user@ok.example.net.>", "trailing dot"),  # T03: strict, pinned
        ("<>", "empty path"),  # T12
        ("<user@>", "empty domain"),
        ("<@example.net>", "bad source route"),
        ("<user>", "no domain"),
        ("<.user@example.net>", "empty atom in local part"),
        ("<us..er@example.net>", "empty atom in local part"),
        ("<user.@example.net>", "empty atom in local part"),
        ("<us er@example.net>", "bad character in local part"),
        ('<"unclosed@example.net>', "unbalanced quotes"),
        ('<""@example.net>', "empty local part"),
        ("<user@example.net", "unbalanced angle brackets"),
        ("user@example.net>", "unbalanced angle brackets"),
        ("<user@exa mple.net>", "bad character in domain"),
        ("<user@example.net@example.org>", "bad character in domain"),
        ("<@bad_route.example:user@example.net>", "bad source route"),
        ("<@a.example,user@example.net>", "bad source route"),
    ],
)
def test_a1_syntax_errors_are_501_5_1_3(path: str, why: str) -> None:
    parsed = analyse(path, smtputf8=False)
    decided(parsed, 501, "1.3", "A1")
    assert parsed.verdict is not None
    assert parsed.verdict.text == f"Bad recipient address syntax ({why})"
    assert parsed.verdict.reason is Reason.SYNTAX


def test_t04_label_of_64_octets_is_refused_and_63_accepted() -> None:
    decided(analyse(f"<user@{'a' * 64}.example.net>", False), 501, "1.3", "A1")
    needs_dns(analyse(f"<user@{'a' * 63}.example.net>", False), f"{'a' * 63}.example.net")


def domain_of(size: int) -> str:
    """A valid domain of exactly `size` octets ending in example.net."""
    name = "example.net"
    while len(name) < size:
        room = size - len(name) - 1
        take = min(63, room)
        if room - take == 1:
            take -= 1
        name = "a" * take + "." + name
    return name


def test_t05_domain_of_254_octets_or_more_is_501() -> None:
    # in a path of at most 256 octets a domain has 252 at most, so the path limit speaks first
    for size in (254, 255, 300):
        parsed = analyse(f"<u@{domain_of(size)}>", False)
        assert parsed.verdict is not None
        assert (parsed.verdict.code, parsed.verdict.status) == (501, "1.3")
    needs_dns(analyse(f"<u@{domain_of(252)}>", False), domain_of(252))
    # the domain rule itself, where no path limit applies: 253 octets is the most
    assert domain_problem(domain_of(253)) is None
    assert domain_problem(domain_of(254)) == "domain too long"


def test_t06_a3_long_local_part_is_not_judged_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    local = "x" * 200
    with caplog.at_level("INFO", logger="mxrelay.rcpt.address"):
        parsed = analyse(f"<{local}@ok.example.net>", False)
    needs_dns(parsed, "ok.example.net")
    assert parsed.mailbox == f"{local}@ok.example.net"
    assert "local part longer than 64 octets (A3)" in caplog.text


def test_t07_path_over_256_octets_is_refused() -> None:
    local = "x" * (256 - len("<@ok.example.net>") + 1)
    parsed = analyse(f"<{local}@ok.example.net>", False)
    decided(parsed, 501, "1.3", "A2")
    assert parsed.verdict is not None
    assert parsed.verdict.text == "Bad recipient address syntax (path too long)"
    needs_dns(analyse(f"<{local[:-1]}@ok.example.net>", False), "ok.example.net")


@pytest.mark.parametrize("local", ['"john doe"', r'"a\"b"', '"a@b"', r'"\\"'])
def test_t08_quoted_local_parts_are_accepted(local: str) -> None:
    parsed = analyse(f"<{local}@ok.example.net>", False)
    needs_dns(parsed, "ok.example.net")
    assert parsed.mailbox == f"{local}@ok.example.net"


# --- source routes, case, brackets -----------------------------------------------------------


def test_source_route_is_accepted_and_removed() -> None:
    parsed = analyse("<@relay.example,@b.example.org:User@Example.NET>", False)
    needs_dns(parsed, "example.net")
    assert parsed.mailbox == "User@example.net"
    assert parsed.shown == "User@Example.NET"


def test_local_part_case_is_kept_and_domain_lowercased() -> None:
    parsed = analyse("<John.Doe@Ok.Example.NET>", False)  # T26
    needs_dns(parsed, "ok.example.net")
    assert parsed.mailbox == "John.Doe@ok.example.net"


def test_a_bare_address_without_brackets_is_read_leniently() -> None:
    needs_dns(analyse("user@example.net", False), "example.net")
    needs_dns(analyse("  <user@example.net>  ", False), "example.net")


# --- A4, A5: SMTPUTF8 and IDN ------------------------------------------------------------------


def test_t20_non_ascii_without_smtputf8_is_553() -> None:
    decided(analyse("<user@bücher.example.net>", False), 553, "6.7", "A4")
    decided(analyse("<jürgen@example.net>", False), 553, "6.7", "A4")


def test_t21_idn_with_smtputf8_is_looked_up_as_a_label() -> None:
    parsed = analyse("<user@Bücher.example.net>", True)
    needs_dns(parsed, "xn--bcher-kva.example.net")
    assert parsed.mailbox == "user@bücher.example.net"


def test_uts46_nontransitional_keeps_sharp_s() -> None:
    # IDNA 2003 (Python's codec) would give fass.de: a different domain
    needs_dns(analyse("<u@faß.example.net>", True), "xn--fa-hia.example.net")


def test_ideographic_full_stop_is_a_dot() -> None:
    needs_dns(analyse("<u@bücher。example。net>", True), "xn--bcher-kva.example.net")


def test_t24_emoji_label_is_501() -> None:
    decided(analyse("<user@👍.example.net>", True), 501, "1.3", "A5")


def test_t25_ascii_a_label_needs_no_smtputf8_and_is_the_same_domain() -> None:
    needs_dns(analyse("<user@xn--bcher-kva.example.net>", False), "xn--bcher-kva.example.net")


def test_utf8_local_part_with_smtputf8_is_accepted() -> None:
    parsed = analyse("<jürgen@example.net>", True)
    needs_dns(parsed, "example.net")
    assert parsed.mailbox == "jürgen@example.net"
    needs_dns(analyse('<"jürgen müller"@example.net>', True), "example.net")
    needs_dns(analyse('<"j\\ü"@example.net>', True), "example.net")


NON_PRINTABLE = ["\x85", "\x9b", "\u2028", "\u2029", "\u202a", "\u202e", "\u2066", "\u2069"]


@pytest.mark.parametrize("char", NON_PRINTABLE, ids=[f"U+{ord(c):04X}" for c in NON_PRINTABLE])
def test_c1_line_separators_and_bidi_controls_are_refused_quoted_or_not(char: str) -> None:
    """As in the sender (501 5.1.7 at MAIL): a recipient must not read as another, or as two
    lines, in a log, the console or a header downstream. The quoted forms were accepted."""
    for local in (f'"victim{char}Bcc: x"', f'"a\\{char}b"', f"a{char}b"):
        parsed = analyse(f"<{local}@example.net>", True)
        decided(parsed, 501, "1.3", "A1")


# --- A6: Postmaster ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["<Postmaster>", "<POSTMASTER>", "<postmaster>"])
def test_t11_postmaster_is_accepted_without_dns(path: str) -> None:
    parsed = analyse(path, False)
    decided(parsed, 250, "1.5", "A6")
    assert parsed.domain is None
    assert parsed.mailbox == path.strip("<>")


# --- A7-A9: address literals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["<user@[127.0.0.1]>", "<user@[IPv6:::1]>", "<user@[10.1.2.3]>", "<u@[ipv6:fe80::1]>"]
)
def test_t16_unroutable_literals_are_550_5_1_2(path: str) -> None:
    parsed = analyse(path, False)
    decided(parsed, 550, "1.2", "A7")
    assert parsed.domain is None


@pytest.mark.parametrize(
    "path",
    [
        "<user@[300.1.1.1]>",
        "<user@[IPv6:zz::1]>",
        "<user@[1.2.3]>",
        "<user@[01.2.3.4]>",
        "<user@[x-tag:abc]>",
        "<user@[IPv6:fe80::1%eth0]>",
        "<user@[8.8.8.8>",
    ],
)
def test_t17_invalid_literals_are_501(path: str) -> None:
    decided(analyse(path, False), 501, "1.3", "A9")


def test_t18_public_literal_is_policy_550_5_7_1_unless_allowed() -> None:
    decided(analyse("<user@[8.8.8.8]>", False), 550, "7.1", "A8")
    allowed = analyse("<user@[8.8.8.8]>", False, AddressRules(allow_address_literals=True))
    decided(allowed, 250, "1.5", "A8")
    assert allowed.mailbox == "user@[8.8.8.8]"


def test_literal_in_an_extra_routable_network_counts_as_routable() -> None:
    rules = AddressRules(allow_address_literals=True, routable_networks=TEST_NET)
    decided(analyse("<user@[192.0.2.7]>", False, rules), 250, "1.5", "A8")


# --- A10, A11: names that never receive mail ---------------------------------------------------


@pytest.mark.parametrize("path", ["<user@intranet>", "<user@localhost>", "<user@LOCALHOST>"])
def test_t13_single_label_is_550_without_search_list(path: str) -> None:
    parsed = analyse(path, False)
    decided(parsed, 550, "1.2", "A10")
    assert parsed.verdict is not None
    assert parsed.verdict.reason is Reason.SPECIAL_USE


@pytest.mark.parametrize(
    "path", ["<u@x.invalid>", "<u@x.test>", "<u@x.onion>", "<u@printer.local>", "<u@a.localhost>"]
)
def test_t14_special_use_names_are_550(path: str) -> None:
    decided(analyse(path, False), 550, "1.2", "A11")


def test_t14_test_tld_may_be_allowed() -> None:
    needs_dns(analyse("<u@x.test>", False, AddressRules(allow_test_tld=True)), "x.test")
    decided(analyse("<u@x.invalid>", False, AddressRules(allow_test_tld=True)), 550, "1.2", "A11")


def test_t15_numeric_final_label_is_550() -> None:
    decided(analyse("<user@10.0.0.1>", False), 550, "1.2", "A11")


def test_example_domains_are_not_special_cased() -> None:
    needs_dns(analyse("<u@example.com>", False), "example.com")
    needs_dns(analyse("<u@example.org>", False), "example.org")


# --- properties ----------------------------------------------------------------------------------

_ADDRESS_ALPHABET = st.sampled_from(
    [*list("abcXYZ019.-_@<>[]:,\"\\ !#%'~"), "ü", "👍", "。", "\x00", "\t", "IPv6:", "xn--"]
)


@given(st.text(max_size=300), st.booleans())
def test_analyse_never_raises_on_any_text(path: str, smtputf8: bool) -> None:
    parsed = analyse(path, smtputf8)
    assert parsed.verdict is not None or parsed.domain is not None


@given(st.lists(_ADDRESS_ALPHABET, max_size=40).map("".join), st.booleans())
def test_every_stage_a_reply_has_a_consistent_class(path: str, smtputf8: bool) -> None:
    parsed = analyse(path, smtputf8)
    if parsed.verdict is None:
        assert parsed.domain is not None
        assert parsed.domain.isascii()
        assert not parsed.domain.endswith(".")
        return
    reply = render(parsed.verdict, parsed.shown, smtputf8=smtputf8).reply
    assert reply.enhanced.split(".")[0] == str(reply.code)[0]
    assert "\r" not in str(reply)
    assert "\n" not in str(reply)
    if not smtputf8:
        assert str(reply).isascii()
