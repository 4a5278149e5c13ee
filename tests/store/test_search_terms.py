"""The search syntax read into terms, on its own (pure): Mailpit's words, quoting, negation,
filters and quirks, table by table; and any input at all is read without an error, within the
bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxrelay.store.search_terms import (
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    Filter,
    Term,
    clean,
    parse_search,
    split_args,
)


def stamp(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("invoice", [Term(Filter.TEXT, "invoice")]),
        ("Invoice 42", [Term(Filter.TEXT, "invoice"), Term(Filter.TEXT, "42")]),
        ('"your invoice"', [Term(Filter.TEXT, "your invoice")]),
        (
            'say "your  invoice" now',
            [Term(Filter.TEXT, "say"), Term(Filter.TEXT, "your invoice"), Term(Filter.TEXT, "now")],
        ),
        ("-invoice", [Term(Filter.TEXT, "invoice", negated=True)]),
        ("!invoice", [Term(Filter.TEXT, "invoice", negated=True)]),
        ("-", []),
        ("- --- !!", []),
        ("to:Alex@Example.NET", [Term(Filter.TO, "alex@example.net")]),
        ('to:"<alex@example.net>"', [Term(Filter.TO, "alex@example.net")]),
        ('from:"John Doe"', [Term(Filter.FROM, "john doe")]),
        (
            "cc:c@x bcc:b@x reply-to:r@x",
            [Term(Filter.CC, "c@x"), Term(Filter.BCC, "b@x"), Term(Filter.REPLY_TO, "r@x")],
        ),
        ("-addressed:a@x", [Term(Filter.ADDRESSED, "a@x", negated=True)]),
        ("to:", []),
        ("subject:Hello", [Term(Filter.SUBJECT, "Hello")]),
        ('subject:"Big News"', [Term(Filter.SUBJECT, "Big News")]),
        ("message-id:<abc@x>", [Term(Filter.MESSAGE_ID, "abc@x")]),
        ("tag:Urgent", [Term(Filter.TAG, "urgent")]),
        # NUL, which no stored text holds and PostgreSQL refuses, is read as a space
        ("from:a\x00bc", [Term(Filter.FROM, "a bc")]),
        ("tag:a\x00b", [Term(Filter.TAG, "a b")]),
        ("subject:a\x00b", [Term(Filter.SUBJECT, "a b")]),
        ("subject:\x00\x00\x00 \x00 a\x00", [Term(Filter.TEXT, "a")]),
        (
            "is:read is:UNREAD -is:tagged",
            [Term(Filter.READ), Term(Filter.UNREAD), Term(Filter.TAGGED, negated=True)],
        ),
        (
            "has:attachment has:attachments has:inline has:inlines",
            [
                Term(Filter.ATTACHMENT),
                Term(Filter.ATTACHMENT),
                Term(Filter.INLINE),
                Term(Filter.INLINE),
            ],
        ),
        ("is:starred", [Term(Filter.TEXT, "is:starred")]),
        ("larger:2M", [Term(Filter.LARGER, number=2 * 1024 * 1024)]),
        ("smaller:1.5kb", [Term(Filter.SMALLER, number=1536)]),
        ("-larger:100", [Term(Filter.LARGER, number=100, negated=True)]),
        ("larger:2G", [Term(Filter.TEXT, "larger:2g")]),
        ("larger:lots", [Term(Filter.TEXT, "larger:lots")]),
        ("after:2024-05-01", [Term(Filter.AFTER, "2024-05-01", stamp("2024-05-01"))]),
        ('before:"May 1, 2024"', [Term(Filter.BEFORE, "MAY 1 2024", stamp("2024-05-01"))]),
        ("after:05/01/2024", [Term(Filter.AFTER, "05/01/2024", stamp("2024-05-01"))]),
        ("after:yesterday", []),
        ("status:Failed", [Term(Filter.STATUS, "failed")]),
        ("refused:nx.example", [Term(Filter.REFUSED, "nx.example")]),
        ("-transport:graph", [Term(Filter.TRANSPORT, "graph", negated=True)]),
        ("@@ ... ,,,", []),
        ("a\u00e9 \u65e5\u672c", [Term(Filter.TEXT, "a\u00e9"), Term(Filter.TEXT, "\u65e5\u672c")]),
    ],
)
def test_terms(query: str, terms: list[Term]) -> None:
    parsed = parse_search(query)
    assert list(parsed.terms) == terms
    assert not parsed.truncated


def test_dates_are_read_in_the_given_zone() -> None:
    [term] = parse_search("after:2024-05-01", ZoneInfo("Pacific/Auckland")).terms
    assert term.number == stamp("2024-05-01", "Pacific/Auckland")
    [explicit] = parse_search("after:2024-05-01T10:00:00Z", ZoneInfo("Pacific/Auckland")).terms
    assert explicit.number == stamp("2024-05-01T10:00:00")


def test_split_and_clean_as_mailpit() -> None:
    assert split_args('a "b c" d"e f"g  ') == ["a", "b c", "de fg"]
    assert split_args('"unclosed phrase') == ["unclosed phrase"]
    assert clean(' A\t<B>,"C";(D)\r\nE\ufeffF ') == "a b c d e f"


def test_too_long_and_too_many_are_flagged_and_bounded() -> None:
    long = parse_search("x" * (MAX_QUERY_LENGTH + 1))
    assert long.truncated
    assert long.terms == (Term(Filter.TEXT, "x" * MAX_QUERY_LENGTH),)
    many = parse_search(" ".join(f"w{n}" for n in range(MAX_TERMS + 5)))
    assert many.truncated
    assert len(many.terms) == MAX_TERMS
    exactly = parse_search(" ".join(f"w{n}" for n in range(MAX_TERMS)))
    assert not exactly.truncated


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=2 * MAX_QUERY_LENGTH), st.sampled_from(["UTC", "Pacific/Auckland"]))
def test_any_input_is_read_without_error_within_the_bounds(query: str, zone: str) -> None:
    parsed = parse_search(query, ZoneInfo(zone))
    assert len(parsed.terms) <= MAX_TERMS
    for term in parsed.terms:
        assert (
            term.kind is Filter.SUBJECT
            or term.text == term.text.lower()
            or term.kind in (Filter.AFTER, Filter.BEFORE)
        )
        assert len(term.text) <= MAX_QUERY_LENGTH


PREFIXES = [f.value for f in Filter if f is not Filter.TEXT] + ["-", "!", '"', " "]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PREFIXES), st.text(max_size=30)), max_size=30))
def test_filter_shaped_input_is_read_without_error(parts: list[tuple[str, str]]) -> None:
    parse_search(" ".join(prefix + value for prefix, value in parts), UTC)
