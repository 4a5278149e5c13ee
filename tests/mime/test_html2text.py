"""HTML bodies as text, by jaytaylor/html2text's rules (what Mailpit shows as `Text`)."""

from __future__ import annotations

import time

import pytest

from mxrelay.mime.html2text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello   <b>bold</b> world</p>", "Hello *bold* world"),
        ('<div style="x"><p>Mailpit is <b>awesome</b>!</p></div>', "Mailpit is *awesome* !"),
        (
            "<h1>Title</h1><h2>Sub</h2><h3>Third</h3>",
            "*****\nTitle\n*****\n\n---\nSub\n---\n\nThird\n-----",
        ),
        ('<a href="https://x.test">https://x.test</a>', "https://x.test"),
        ('<a href=" mailto:a@b.test ">a@b.test</a>', "a@b.test"),
        ('<a href="https://x.test/a">the <i>news</i></a>', "the news ( https://x.test/a )"),
        ('<a href="https://x.test"><img src="l.png" alt="Logo"></a>', "Logo ( https://x.test )"),
        ("<ul><li>one</li><li>two</li></ul>", "* one\n* two"),
        ("line<br>break", "line\nbreak"),
        ("<head><title>T</title><style>p{}</style></head><script>x()</script>Body", "Body"),
        ("<pre>  keep\n   this</pre>", "keep\n  this"),  # every "\\n " is "\\n", as upstream
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("<p>one</p>\n\n\n<p>two</p>", "one\n\ntwo"),
        ("Fish &amp; chips &lt;3", "Fish & chips <3"),
        ("<p>unclosed <div>markup", "unclosed\nmarkup"),
    ],
)
def test_rules(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_quotes_are_prefixed_and_wrapped() -> None:
    text = html_to_text("<blockquote>" + "word " * 30 + "</blockquote>")
    lines = text.split("\n")
    assert all(line.startswith(">") for line in lines)
    assert max(len(line) for line in lines) <= 76


def test_hostile_markup_is_bounded() -> None:
    started = time.monotonic()
    html_to_text("<div>" * 100_000 + "x" + "<" * 100_000 + "<a href=" * 10_000)
    assert time.monotonic() - started < 10
