"""List-Unsubscribe checked as Mailpit checks it, with Mailpit's messages."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime import unsubscribe
from mxrelay.mime.unsubscribe import delimited, go_quote, list_unsubscribe, parse_links, wrapped

CASES = [
    (
        "<mailto:unsubscribe@example.test>, <https://example.test/unsubscribe>",
        ["mailto:unsubscribe@example.test", "https://example.test/unsubscribe"],
        "",
    ),
    ("(a comment) <https://x.test/u> (another)", ["https://x.test/u"], ""),
    ("mailto:x@y.test", [], '"mailto:x@y.test" no valid unsubscribe links found'),
    ("junk <http://x.test>", [], '"junk <http://x.test>" should be enclosed in <>'),
    (
        "<mailto:a@b.test> <http://x.test>",
        [],
        '"<mailto:a@b.test> <http://x.test>" <> should be split with a comma and optional spaces',
    ),
    (
        "<http://a.test>, <http://b.test>, <mailto:c@d.test>",
        [],
        '"<http://a.test>, <http://b.test>, <mailto:c@d.test>" should include a maximum of one'
        " email and one HTTP link",
    ),
    ("<http://a.test/a b>", [], '"http://a.test/a b" should not contain spaces'),
    ("<ftp://x.test>", [], '"ftp://x.test" should start with either http(s):// or mailto:'),
    (
        "<mailto:a@b.test>,<mailto:c@d.test>",
        ["mailto:a@b.test"],
        '"mailto:c@d.test" should only contain one mailto:',
    ),
    (
        "<https://a.test>, <http://b.test>",
        ["https://a.test"],
        '"http://b.test" should only contain one HTTP link',
    ),
    ("<http://a.test:b/x>", [], 'parse "http://a.test:b/x": invalid port ":b" after host'),
    ("<http://a.test/%zz>", [], 'parse "http://a.test/%zz": invalid URL escape "%zz"'),
    (
        "<http://ex^ample.test/>",
        [],
        'parse "http://ex^ample.test/": invalid character "^" in host name',
    ),
    (
        "<http://a.test/\x01>",
        [],
        'parse "http://a.test/\\x01": net/url: invalid control character in URL',
    ),
]


@pytest.mark.parametrize(("header", "links", "errors"), CASES)
def test_mailpit_messages(header: str, links: list[str], errors: str) -> None:
    assert parse_links(header) == (links, errors)


def test_the_object_carries_the_field_and_the_one_click_field() -> None:
    found = list_unsubscribe("<https://x.test/u>", "List-Unsubscribe=One-Click")
    assert (found.header, found.links, found.errors, found.header_post) == (
        "<https://x.test/u>",
        ("https://x.test/u",),
        "",
        "List-Unsubscribe=One-Click",
    )
    assert list_unsubscribe("") == list_unsubscribe("", "ignored without the field")


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\té\x7f') == '"a\\"b\\\\c\\n\\té\\x7f"'


@given(st.text(max_size=300))
def test_any_text(value: str) -> None:
    links, _ = parse_links(value)
    assert len(links) <= 2


_PIECES = st.text(alphabet=st.sampled_from("<>()\n ,a"), max_size=40)


@given(_PIECES)
def test_delimited_pieces_are_what_mailpits_lazy_patterns_find(value: str) -> None:
    # The patterns Mailpit uses, which rescan to the end at every unclosed opener (quadratic).
    assert delimited(value, "<", ">", one_line=True) == re.findall(r"<(.*?)>", value)
    assert delimited(value, ">", "<") == re.findall(r">(.*?)<", value, re.DOTALL)
    assert delimited(value, "(", ")", inner=False) == re.findall(r"\(.*?\)", value, re.DOTALL)
    assert wrapped(value) == bool(re.search(r"^<.*>$", value, re.MULTILINE | re.DOTALL))


def test_no_pattern_rescans_an_unclosed_opener() -> None:
    # Linear by construction: no pattern of the module repeats an unbounded wildcard.
    patterns = [v for v in vars(unsubscribe).values() if isinstance(v, re.Pattern)]
    assert patterns
    assert not [p.pattern for p in patterns if ".*" in p.pattern or ".+" in p.pattern]


@pytest.mark.parametrize("opener", ["<", "(", "<a>" + ">" * 10])
def test_unclosed_openers_up_to_the_limit(opener: str) -> None:
    value = (opener * 8192)[:8192]
    found = list_unsubscribe(value)
    assert found.links == ()
    assert found.errors
