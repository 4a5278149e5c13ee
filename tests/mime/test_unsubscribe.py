"""List-Unsubscribe checked as Mailpit checks it, with Mailpit's messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.unsubscribe import go_quote, list_unsubscribe, parse_links

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
