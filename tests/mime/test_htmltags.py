"""Every link of an HTML body opened in a new window, as Mailpit's embed mode sets them: every
`<a>` start tag and nothing else, whatever the markup around it."""

from __future__ import annotations

import time

import pytest

from mxrelay.mime.htmltags import open_links_apart

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
