"""`<meta http-equiv>` out of an HTML body in every reading a browser could make of it: the tags
the scan reads are removed, a `<meta` it reads as text or a value (where a browser in another
state would read a tag) is renamed, other metas stay, and the work is bounded. Checked against
html5lib, a parser written to the HTML standard, with scripting off and on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime import htmlmeta, htmltags
from mxrelay.mime.htmlmeta import READ_LIMIT, READ_MARGIN, without_meta_equiv
from tests.support.html5 import meta_equivs
from tests.support.reads import Reads

EVIL = 'content="0;url=https://evil.example/"'


@pytest.mark.parametrize(
    ("html", "kept"),
    [
        # Tags the scan reads: removed, wherever they stand.
        (
            f"<head><meta http-equiv=refresh {EVIL}><title>T</title></head>",
            "<head><title>T</title></head>",
        ),
        ('<meta content="0;url=https://evil.example/>" http-equiv=refresh>x', "x"),
        ("<svg><meta HTTP-EQUIV=Refresh></svg>", "<svg></svg>"),
        ("<style>p{}<meta http-equiv=refresh></style>", "<style>p{}</style>"),  # text: harmless
        # A `<meta` the scan reads inside a value, and that a browser in another state reads as
        # a tag (with scripting on, `<noscript>` holds text, so `</noscript>` ends it early).
        (
            f'<noscript><a b="</noscript><meta http-equiv=refresh {EVIL}>">',
            f'<noscript><a b="</noscript><meta-removed http-equiv=refresh {EVIL}>">',
        ),
        # One the first pass's removal joins together.
        ("<<meta http-equiv=a>meta http-equiv=refresh>", "<meta-removed http-equiv=refresh>"),
        # Renamed in a value too: text to a browser, changed in a way no one acts on.
        ('<p title="<meta http-equiv=x>">', '<p title="<meta-removed http-equiv=x>">'),
        # Other metas, and look-alikes, stay.
        (
            '<meta charset="utf-8"><meta name=viewport content="width=device-width">',
            '<meta charset="utf-8"><meta name=viewport content="width=device-width">',
        ),
        (
            "<metadata http-equiv=x><meta\x0bhttp-equiv=x>",
            "<metadata http-equiv=x><meta\x0bhttp-equiv=x>",
        ),
        (
            "<meta http&#45;equiv=refresh></meta http-equiv=x>",
            "<meta http&#45;equiv=refresh></meta http-equiv=x>",
        ),
        # Cut off by the end of the input, a browser drops it; renamed all the same.
        ("<meta http-equiv=refresh", "<meta-removed http-equiv=refresh"),
    ],
)
def test_meta_equiv_is_removed(html: str, kept: str) -> None:
    assert without_meta_equiv(html) == kept
    assert meta_equivs(kept) == []


PIECES = [
    "<meta",
    "<META",
    "<meta/",
    "<meta ",
    "<meta http-equiv=refresh content=0>",
    "<meta http-equiv=refresh ",
    " http-equiv",
    " HTTP-EQUIV=",
    "=refresh",
    '<meta content="',
    "<meta a='",
    '"',
    "'",
    "<",
    ">",
    "/",
    "=",
    " ",
    "\n",
    "\x0b",
    "x",
    "-",
    "!",
    "<!--",
    "-->",
    "--!>",
    "<!-->",
    "<!--->",
    "<!",
    "<?",
    "</",
    "</ ",
    "<a b=",
    "<p ",
    "<![CDATA[",
    "]]>",
    *(f"<{tag}>" for tag in ("style", "script", "noscript", "textarea", "title", "xmp", "iframe")),
    *(f"</{tag}>" for tag in ("style", "script", "noscript", "textarea", "title", "xmp", "iframe")),
    "<!--<script>",
    "<svg>",
    "</svg>",
    "<math>",
    "<plaintext>",
    "<template>",
    "<select>",
    "<table>",
]


@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_no_reading_is_left_with_a_meta_equiv(html: str) -> None:
    assert meta_equivs(without_meta_equiv(html)) == []


HOSTILE = [
    "<meta/a=" * 25_000,  # each tag read from a `<meta` runs to the end of the input
    "<meta a='" * 25_000,
    '<meta a="<meta b=' * 15_000,
    "<meta " * 40_000,
    "<meta http-equiv=x " * 12_000,
    "<<meta http-equiv=a>meta" * 10_000,
]


@pytest.mark.parametrize("html", HOSTILE, ids=range(len(HOSTILE)))
def test_the_work_is_linear(html: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: at two sizes the searches read a bounded multiple of the input."""
    reads = Reads()
    reads.watch(monkeypatch, htmltags, htmlmeta)
    for source in (html[: len(html) // 8], html):
        reads.count = 0
        without_meta_equiv(source)
        assert reads.count <= (READ_LIMIT + 8) * len(source) + 2 * READ_MARGIN


def test_past_the_budget_every_meta_left_is_renamed() -> None:
    """The tags read from each `<meta` here overlap to the end: after a few, the rest go unread,
    `<meta charset>` with them (over-removal is safe)."""
    html = "<meta/a=" * 50_000 + "<meta charset=utf-8>"
    served = without_meta_equiv(html)
    assert served.startswith("<meta/a=")  # read: no http-equiv
    assert served.endswith("<meta-removed charset=utf-8>")
    assert served.count("<meta-removed/") > 49_900
