"""Addresses read with bounded work: the fast path agrees with the RFC 5322 parser, bounds make
text unreadable instead of expensive, and the From of a message is found in C."""

from __future__ import annotations

import email.policy
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.addresses import (
    _SIMPLE,
    ENTRY_LIMIT,
    NESTING_LIMIT,
    ParserBudget,
    named_addresses,
    nesting,
    parse_addresses,
    parser_characters,
    read_author,
    split_list,
)
from mxrelay.mime.parse import HEADER_LIMIT


def stdlib_specs(text: str) -> tuple[str, ...]:
    header = email.policy.default.header_factory("to", text)
    return tuple(str(a.addr_spec) for a in header.addresses if a.domain)


@pytest.mark.parametrize(
    ("text", "specs"),
    [
        ("jane@example.net", ("jane@example.net",)),
        ("  Jane  Doe <jane@example.net> ", ("jane@example.net",)),
        ('"Doe, Jane" <jane@example.net>', ("jane@example.net",)),
        ('"a b"@example.net', ('"a b"@example.net',)),
        ("=?utf-8?q?J=C3=A4ne?= <jane@example.net>", ("jane@example.net",)),
        ("jane@example.net (Jane (the (first)))", ("jane@example.net",)),
        ("Team: a@example.net, b@example.net;", ("a@example.net", "b@example.net")),
        ("undisclosed-recipients:;", ()),
        ("jürgen@bücher.example", ("jürgen@bücher.example",)),
    ],
)
def test_addresses_as_the_rfc_5322_parser_reads_them(text: str, specs: tuple[str, ...]) -> None:
    parsed = parse_addresses(text)
    assert parsed.readable
    assert parsed.specs == specs


@pytest.mark.parametrize(
    ("text", "specs"),
    [
        # Obsolete syntax RFC 5322 section 4 says must be accepted (the parser reports an
        # ObsoleteHeaderDefect): the address is as certain as without it.
        ("John Q. Public <john@example.net>", ("john@example.net",)),  # RFC 5322 A.6.1
        ("Dr. Alice Smith <alice@example.net>", ("alice@example.net",)),
        ("<@relay.example:john@example.net>", ("john@example.net",)),  # a route, ignored
        ("<@a.example,@b.example:john@example.net>", ("john@example.net",)),
        ("john . doe@example.net", ("john.doe@example.net",)),
        ("a@example . net", ("a@example.net",)),
    ],
)
def test_obsolete_forms_are_clean(text: str, specs: tuple[str, ...]) -> None:
    parsed = parse_addresses(text)
    assert (parsed.readable, parsed.clean, parsed.specs) == (True, True, specs)


@pytest.mark.parametrize(
    "text", ["a..b@example.net", "a.@example.net", "John Q. Public john@example.net", "<broken"]
)
def test_invalid_forms_are_not_clean(text: str) -> None:
    assert not parse_addresses(text).clean


ATOM = st.text("abcxyzABC0189!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?", fullmatch=True)


@st.composite
def simple_forms(draw: st.DrawFn) -> str:
    local = ".".join(draw(st.lists(ATOM, min_size=1, max_size=3)))
    domain = ".".join(draw(st.lists(LABEL, min_size=1, max_size=3)))
    spec = f"{local}@{domain}"
    name = draw(
        st.one_of(
            st.none(),
            st.lists(ATOM, min_size=1, max_size=3).map(" ".join),
            st.text("ab ,.;:<>@()[]", max_size=8).map(lambda t: f'"{t}"'),
        )
    )
    blank = draw(st.sampled_from(["", " ", "\t ", "  "]))
    if name is None:
        return blank + draw(st.sampled_from([spec, f"<{spec}>"])) + blank
    return f"{blank}{name}{blank}<{spec}>{blank}"


@given(simple_forms())
def test_the_fast_path_reads_what_the_stdlib_reads(text: str) -> None:
    if _SIMPLE.fullmatch(text.strip(" \t")) is None:
        return  # a form the fast path leaves to the stdlib parser
    assert parse_addresses(text).specs == stdlib_specs(text)


def test_beyond_the_bounds_nothing_is_parsed() -> None:
    deep = "(" * (NESTING_LIMIT + 1) + "x" + ")" * (NESTING_LIMIT + 1) + " a@example.net"
    assert not parse_addresses(deep).readable
    shallow = "(" * NESTING_LIMIT + "x" + ")" * NESTING_LIMIT + " a@example.net"
    assert parse_addresses(shallow).specs == ("a@example.net",)
    long = "=?utf-8?q?a?= " * (ENTRY_LIMIT // 14 + 1) + "<a@example.net>"
    assert not parse_addresses(long).readable
    assert nesting('"(((" (a (b) c) \\( x') == 2  # quotes and escapes do not count


def test_read_author() -> None:
    data = b'From: "Sales, Team" <Sales@Contoso.example>\r\nTo: a@b.example\r\n\r\nbody'
    assert read_author(data).address == "Sales@Contoso.example"
    assert read_author(b"To: a@b.example\r\n\r\nFrom: x@y.example\r\n").present is False
    group = read_author(b"From: undisclosed:;\r\n\r\n")
    assert (group.present, group.address, group.readable) == (True, None, True)
    folded = read_author(b"Subject: x\r\nFrom: Jane\r\n <jane@example.net>\r\nTo: y\r\n\r\n")
    assert folded.address == "jane@example.net"
    assert read_author(b"from : a@example.net\r\n\r\n").address == "a@example.net"
    assert read_author(b"X-From: a@example.net\r\n\r\n").present is False


@pytest.mark.parametrize(
    "data",
    [
        b"From: " + b"=?utf-8?q?a?= " * 10_000 + b"<a@b.c>\r\n\r\n",  # 140 KB of encoded words
        b"From: "
        + b"(" * 5000
        + b")" * 5000
        + b" a@b.c\r\n\r\n",  # deeper than the recursion limit
        b"X-Filler: " + b"x" * HEADER_LIMIT + b"\r\nFrom: a@b.c\r\n\r\n",  # past the header limit
    ],
)
def test_an_author_beyond_the_bounds_is_unreadable(data: bytes) -> None:
    author = read_author(data)
    assert (author.present or not author.readable, author.address) == (True, None)
    assert not author.readable


def test_stored_lists_split_on_commas_outside_quotes() -> None:
    assert split_list('a@example.net, "x, y"@example.net,b@example.net') == [
        "a@example.net",
        '"x, y"@example.net',
        "b@example.net",
    ]
    assert split_list("") == []
    assert split_list('"' + "a" * 10_000) == ['"' + "a" * 10_000]  # unbalanced: linear, kept


def test_the_fast_path_pattern_has_no_nested_ambiguity() -> None:
    # Every repetition of _SIMPLE is followed by something it cannot match itself; a pattern
    # with two adjacent blank runs took quadratic time on a long run of blanks.
    assert not re.search(r"\[ \\t\]\*\[ \\t\]", _SIMPLE.pattern)


@pytest.mark.parametrize(
    ("value", "mailboxes"),
    [
        ("Alex <alex@example.net>", (("Alex", "alex@example.net"),)),
        ('"Doe, John" <j@x.org>, b@y.org', (("Doe, John", "j@x.org"), ("", "b@y.org"))),
        ("=?utf-8?q?J=C3=BCrgen?= <j@x.net>", (("Jürgen", "j@x.net"),)),
        ("Jürgen Ö <j@x.net>", (("Jürgen Ö", "j@x.net"),)),
        ('"quoted \\" name" <q@x.y>', (('quoted " name', "q@x.y"),)),
        ("a@b.c (comment)", (("", "a@b.c"),)),
        ("undisclosed-recipients:;", ()),
        ("team: a@x.org, b@y.org;", (("", "a@x.org"), ("", "b@y.org"))),
        ("postmaster", ()),
        ("", ()),
        # A byte its charset refuses, in an encoded word, by either path (the fast one, and the
        # standard library's parser for an entry with a comment or a stray colon).
        ("=?utf-8?q?J=FCrgen?= <j@x.net>", (("J\ufffdrgen", "j@x.net"),)),
        ("=?utf-8?q?J=FCrgen?= (team) <j@x.net>", (("J\ufffdrgen", "j@x.net"),)),
        ("=?UTF-8?Q?=C3=9Cn=:C3=B6?= <n@cal.example>", (("Ün=:C3\ufffd", "n@cal.example"),)),
    ],
)
def test_named_addresses(value: str, mailboxes: tuple[tuple[str, str], ...]) -> None:
    assert named_addresses(value) == mailboxes


@given(st.binary(max_size=24), st.sampled_from(["", " (c)", " x:y"]))
def test_display_names_are_always_utf8(word: bytes, tail: str) -> None:
    # What the API answers with and the store keeps: text any UTF-8 encoder takes.
    escaped = "".join(f"={byte:02X}" for byte in word)
    for name, _ in named_addresses(f"=?utf-8?q?{escaped}?={tail} <a@example.net>"):
        name.encode("utf-8")


def test_named_addresses_are_bounded() -> None:
    many = ", ".join(f"user{n}@example.org" for n in range(3000))
    assert len(named_addresses(many, limit=1000)) == 1000
    assert len(named_addresses(many, characters=100)) == 5
    huge = "(" * 50 + "x@y.z" + ")" * 50
    assert named_addresses(huge) == (("", "x@y.z"),)  # beyond NESTING_LIMIT: no parse, no name
    assert named_addresses("a" * (ENTRY_LIMIT + 10) + "@b.c") == (
        ("", "a" * (ENTRY_LIMIT + 10) + "@b.c"),
    )


@given(st.text(max_size=300))
def test_named_addresses_never_raise(value: str) -> None:
    for name, address in named_addresses(value):
        assert isinstance(name, str)
        assert address


def test_a_parser_budget_makes_later_entries_unreadable() -> None:
    budget = ParserBudget(100)
    odd = "John Q. Public <john@example.net>"  # the stdlib parser reads it (a period)
    assert parse_addresses(odd, budget).specs == ("john@example.net",)
    assert budget.characters == 100 - len(odd)
    assert parse_addresses("jane@example.net", budget).readable  # the pattern: no budget spent
    assert budget.characters == 100 - len(odd)
    assert not parse_addresses("(a)" * 30, budget).readable  # does not fit: spent
    assert budget.characters == 0
    assert not parse_addresses(odd, budget).readable
    names = named_addresses(f"{odd}, Jane <jane@example.net>", budget=ParserBudget(10))
    assert names == (("", "john@example.net"), ("Jane", "jane@example.net"))


def test_parser_characters_count_what_the_pattern_does_not_read() -> None:
    assert (
        parser_characters([b" a@example.net, B <b@example.net>", b' "C, D" <c@example.net>']) == 0
    )
    assert parser_characters([b" a@example.net", b" (x) <c@example.net>"]) == len(
        " (x) <c@example.net>"
    )
    assert parser_characters([b" a@example.net,\r\n Dr. B <b@example.net>"]) == len(
        " a@example.net, Dr. B <b@example.net>"
    )
    long = b"a@example.net, " * 1000  # not looked into past `examined`: all of it counts
    assert parser_characters([long], examined=1024) == len(long)
