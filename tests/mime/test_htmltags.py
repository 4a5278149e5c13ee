"""Every link of an HTML body opened in a new window, as Mailpit's embed mode sets them: every
`<a>` start tag and nothing else, whatever the markup around it."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime import htmltags
from mxrelay.mime.htmltags import (
    Attribute,
    attributes,
    next_attribute,
    next_markup,
    open_links_apart,
    read_to_equiv,
    tag_end,
)
from tests.support.reads import Reads

NEW = ' target="_blank" rel="noreferrer noopener">'


@pytest.mark.parametrize(
    ("html", "embedded"),
    [
        ('<a href="https://x.test/a">news</a>', f'<a href="https://x.test/a"{NEW}news</a>'),
        ("<A HREF=x>one</A>", f"<A HREF=x{NEW}one</A>"),
        ("<a>no href</a>", f"<a{NEW}no href</a>"),  # Mailpit sets them on every anchor
        (
            "<a target=_self rel='opener' href=\"x\" TARGET=frame>a</a>",
            f'<a href="x"{NEW}a</a>',
        ),
        ('<a href="x > y" title=\'a"b\'>q</a>', f'<a href="x > y" title=\'a"b\'{NEW}q</a>'),
        ("<a href=x/>", f"<a href=x/{NEW}"),
        ('<a\nhref="x"\n>', f'<a href="x"{NEW}'),
        ("<abbr title=a>x</abbr><area href=x>", "<abbr title=a>x</abbr><area href=x>"),
        ("<!-- <a href=x> --><a>", f"<!-- <a href=x> --><a{NEW}"),
        ("<!DOCTYPE html><?x <a>?><a>", f"<!DOCTYPE html><?x <a>?><a{NEW}"),
        (
            "<script>if (a <b) '<a href=x>'</script ><a>",
            f"<script>if (a <b) '<a href=x>'</script ><a{NEW}",
        ),
        ("<textarea><a href=x></TEXTAREA><a>", f"<textarea><a href=x></TEXTAREA><a{NEW}"),
        ("<style>a{}<a></style>", "<style>a{}<a></style>"),
        ("1 < 2 <a>", f"1 < 2 <a{NEW}"),
        ('<a href="never closed>rest <a>', '<a href="never closed>rest <a>'),
        ("", ""),
    ],
)
def test_links(html: str, embedded: str) -> None:
    assert open_links_apart(html) == embedded


def test_text_outside_the_links_is_kept_byte_for_byte() -> None:
    html = "<html><body><p>Hi &amp; <b>bye</b></p>\r\n<a href=x>l</a>\u00e9</body></html>"
    assert open_links_apart(html) == html.replace("<a href=x>", f"<a href=x{NEW}")


def test_hostile_markup_is_linear() -> None:
    started = time.monotonic()
    open_links_apart("<a " * 100_000 + "<a href='" + "<" * 100_000 + "<script>" * 10_000)
    open_links_apart("<a href=x>" * 200_000)
    assert time.monotonic() - started < 10


def markup_of(source: str) -> list[tuple[str, str]]:
    """Each piece of markup the scan finds, as (its text, its tag), up to a tag that never ends."""
    found: list[tuple[str, str]] = []
    pos = 0
    while (markup := next_markup(source, pos)) is not None and not markup.cut:
        found.append((source[markup.start : markup.end], markup.tag))
        pos = markup.end
    return found


@pytest.mark.parametrize(
    ("html", "found"),
    [
        # A quote opens a value only after `=`: a `>` in a quoted value does not end the tag...
        ('<meta content="0;url=x/>" http-equiv=refresh>', [("*", "meta")]),
        ("<a b = 'c>d' e>", [("*", "a")]),
        # ...and one after a quote that is part of a name (or of an unquoted value) does.
        ('<p a"><b>">', [('<p a">', "p"), ("<b>", "b")]),
        ('<a b=x"y><i>">', [('<a b=x"y>', "a"), ("<i>", "i")]),
        ("<a b=\"x\"c='>'><i>", [("<a b=\"x\"c='>'>", "a"), ("<i>", "i")]),
        # White space is HTML's five characters: a vertical tab is part of a name or value.
        ('<a b=x\x0b=c="><i>">', [('<a b=x\x0b=c=">', "a"), ("<i>", "i")]),
        ("<a\x0bb><i>", [("<a\x0bb>", "a\x0bb"), ("<i>", "i")]),
        ("<META/http-equiv=refresh/>", [("*", "meta")]),
        # Comments end where a browser ends them.
        ("<!--><b>-->", [("<!-->", ""), ("<b>", "b")]),
        ("<!---><b>-->", [("<!--->", ""), ("<b>", "b")]),
        ("<!-- a --!><b>-->", [("<!-- a --!>", ""), ("<b>", "b")]),
        ("<!--!><b>-->", [("*", "")]),
        ("<!---!><b>-->", [("*", "")]),
        ("<!-- <!-- --><b>", [("<!-- <!-- -->", ""), ("<b>", "b")]),
        ("<!-- never", [("*", "")]),
        # `</ …>` is a comment, `</>` nothing; a doctype ends at its first `>`, quoted or not.
        ("</ x><b>", [("</ x>", ""), ("<b>", "b")]),
        ("</><b>", [("</>", ""), ("<b>", "b")]),
        ("</", []),
        ('<!DOCTYPE html PUBLIC "a>"><b>', [('<!DOCTYPE html PUBLIC "a>', ""), ("<b>", "b")]),
        ("<?x y='>'?><b>", [("<?x y='>", ""), ("<b>", "b")]),
        ("<![CDATA[ > ]]><b>", [("<![CDATA[ >", ""), ("<b>", "b")]),
        ("1 < 2 <3 <a", []),
    ],
)
def test_markup_ends_where_a_browser_ends_it(html: str, found: list[tuple[str, str]]) -> None:
    assert markup_of(html) == [(html if text == "*" else text, tag) for text, tag in found]


def test_attributes_are_read_as_a_browser_reads_them() -> None:
    html = "<a B = 'x>' c=\"y\"d e=f/g =h / i\x0bj='k' l= >"
    markup = next_markup(html, 0)
    assert markup is not None
    assert [(found.name, found.value) for found in attributes(html, markup)] == [
        ("b", "x>"),
        ("c", "y"),
        ("d", ""),
        ("e", "f/g"),
        ("=h", ""),
        ("i\x0bj", "k"),
        ("l", ""),
    ]
    assert [html[found.start : found.end] for found in attributes(html, markup)][:2] == [
        "B = 'x>'",
        'c="y"',
    ]


def test_a_tag_the_input_ends_inside_is_cut() -> None:
    for html in ("<a", "<a b", "<a b=", "<a b='x>", "<a b=\"x'>", "<a b=c"):
        markup = next_markup(html, 0)
        assert markup is not None, html
        assert markup.cut, html


TAG_PIECES = ["a", "=", "'", '"', ">", "/", " ", "\n", "\x0b", "<", "http-equiv", "HTTP-EQUIV", "-"]


@given(st.lists(st.sampled_from(TAG_PIECES), max_size=20).map("".join))
def test_the_tag_is_read_alike_by_each_of_its_readers(rest: str) -> None:
    """The end one attribute at a time, the end at once, and `http-equiv` found or not."""
    html = "<meta " + rest
    pos = 5
    names = []
    while isinstance(found := next_attribute(html, pos), Attribute):
        names.append(found.name)
        pos = found.end
    assert found == tag_end(html, 5)
    equiv, stopped = read_to_equiv(html, 5)
    if found == -1:  # cut off: a browser drops it, so finding more is no harm
        assert equiv or "http-equiv" not in names
    else:
        assert equiv == ("http-equiv" in names)
        assert equiv or stopped == found


HOSTILE = [
    "<a " + '"" ' * 50_000 + ">",  # quotes that are names: the old scan re-read to `>` at each
    "<a" + ' b="' * 50_000,
    '<p a"' * 50_000,
    "<!--" * 50_000,
    "<!-->" * 50_000,
    "</ " * 50_000,
    "<a b=" * 50_000,
    "<a b='" + "<" * 100_000,
    "<" * 100_000 + "<a",
    "<a>" * 50_000,
]


@pytest.mark.parametrize("html", HOSTILE, ids=range(len(HOSTILE)))
def test_the_scan_reads_each_character_a_few_times(
    html: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, not timed: at two sizes the searches read at most a few times the input."""
    reads = Reads()
    reads.watch(monkeypatch, htmltags)
    for source in (html[: len(html) // 8], html):
        reads.count = 0
        pos = 0
        while (markup := next_markup(source, pos)) is not None and not markup.cut:
            pos = markup.end
            list(attributes(source, markup))
        assert reads.count <= 6 * len(source) + 16, (reads.count, len(source))
