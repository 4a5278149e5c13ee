"""The /view pages over real HTTP: the HTML under a sandboxing policy (with `embed=1`, every link
opening a new window), the text, /view/latest, and doubled slashes answered as Mailpit answers
them; the HTML without its refreshes, and the policy that lets remote images in when asked."""

from __future__ import annotations

import base64

import httpx
import pytest

from mxrelay.app import Relay
from mxrelay.mime.parts import Reading, read_parts
from mxrelay.store.search import MAX_TERMS
from mxrelay.web.api_v1.view import (
    PREVIEW_POLICY,
    REMOTE_IMAGES_POLICY,
    remote_references,
    served_html,
)
from tests.support.html5 import meta_equivs
from tests.web.api_v1.conftest import Mailbox, call, send


async def test_html_is_served_inert_with_inline_images_linked(mailbox: Mailbox) -> None:
    ident = mailbox.ids["related"]
    page = await mailbox.get(f"/view/{ident}.html")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "sandbox" in policy.split("; ")  # an origin of its own, no script, no form
    assert "default-src 'none'" in policy
    assert "img-src 'self' data:" in policy  # no remote image, no remote anything
    assert "script-src" not in policy
    assert page.headers["x-frame-options"] == "SAMEORIGIN"  # the UI may frame it
    assert f'src="../api/v1/message/{ident}/part/1.2"' in page.text  # was cid:logo@example.org
    assert "cid:logo@example.org" not in page.text
    embedded = await mailbox.get(f"/view/{ident}.html", embed="1")
    assert 'src="data:image/png;base64,iVBORw0KGgo' in embedded.text


async def test_text_missing_html_and_unknown_messages(mailbox: Mailbox) -> None:
    text = await mailbox.get(f"/view/{mailbox.ids['related']}.txt")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == "Thank you for your order ✓.\r\nLine two."
    no_html = await mailbox.get(f"/view/{mailbox.ids['forward']}.html")
    assert (no_html.status_code, no_html.text) == (404, "This message does not contain a HTML part")
    unknown = await mailbox.get("/view/01NOTAMESSAGE0000000000000.txt")
    assert (unknown.status_code, unknown.text) == (404, "Message not found")
    latest = await mailbox.get("/view/latest.txt")
    assert latest.text.startswith("*****\nHello")
    flags = {m["ID"]: m["Read"] for m in (await mailbox.get("/api/v1/messages")).json()["messages"]}
    assert flags[mailbox.ids["related"]]  # viewing a message reads it
    assert flags[mailbox.ids["html-only"]]


async def test_view_latest_redirects_to_the_newest_messages_page(mailbox: Mailbox) -> None:
    moved = await mailbox.get("/view/latest")
    assert (moved.status_code, moved.headers["location"]) == (
        302,
        f"../message/{mailbox.ids['html-only']}",
    )
    matching = await mailbox.get("/view/latest", query="order")
    assert matching.headers["location"] == f"../message/{mailbox.ids['related']}"


async def test_view_latest_refuses_a_query_beyond_the_search_bounds(mailbox: Mailbox) -> None:
    too_many = " ".join(["-subject:nothing"] * MAX_TERMS + ["subject:order"])
    for path in ("/view/latest", "/view/latest.html", "/view/latest.txt"):
        refused = await mailbox.get(path, query=too_many)
        assert (refused.status_code, refused.text[:21]) == (400, "search query too long")


async def test_doubled_slashes_are_moved_permanently(mailbox: Mailbox) -> None:
    ident = mailbox.ids["related"]
    async with httpx.AsyncClient() as client:
        moved = await client.get(f"{mailbox.base}//view/{ident}.html?embed=1")
        assert (moved.status_code, moved.headers["location"]) == (
            301,
            f"/view/{ident}.html?embed=1",
        )
        api = await client.get(f"{mailbox.base}/api/v1//message/latest")
        assert (api.status_code, api.headers["location"]) == (301, "/api/v1/message/latest")
        followed = await client.get(f"{mailbox.base}//view/{ident}.txt", follow_redirects=True)
        assert followed.text.startswith("Thank you for your order")


def test_a_refresh_is_removed_and_remote_references_are_counted() -> None:
    html = (
        '<html><head><meta http-equiv="refresh" content="0; url=https://tracker.example/r">'
        '<META HTTP-EQUIV=Refresh CONTENT="1;URL=//tracker.example/r2">'
        '<meta charset="utf-8"><link rel="stylesheet" href="https://tracker.example/s.css">'
        "<style>body { background: url('//tracker.example/bg.png') }</style></head>"
        '<body><img src="cid:logo@example.org"><img src="https://tracker.example/p.gif">'
        "</body></html>"
    )
    logo = b"\x89PNG\r\n\x1a\n"
    message = (
        b'Content-Type: multipart/related; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode() + b"\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@example.org>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(logo) + b"\r\n--b--\r\n"
    )
    reading = read_parts(message)
    served = served_html(reading, "01ID", embed=True)
    assert "http-equiv" not in served.lower()
    assert '<meta charset="utf-8">' in served
    assert 'src="data:image/png;base64,' in served
    # The sheet, the background and the pixel (the refreshes are removed, not counted).
    assert remote_references(reading.html) == 3
    assert remote_references(served) == 3


EVIL = "https://evil.example/"
REFRESHES = {
    # A `>` or `<` in a quoted value, where the pattern stops.
    "quoted >": f'<meta content="0;url={EVIL}>" http-equiv=refresh>',
    "quoted <": f'<meta content="a<b" http-equiv="refresh" content="0;url={EVIL}">',
    "far into the tag": "<meta " + "a" * 2100 + f' http-equiv=refresh content="0;url={EVIL}">',
    # The same with what a scanner might not take for a tag's separators, names or values...
    "slashes": f'<meta/content="0;url={EVIL}>"/http-equiv=refresh/>',
    "odd case": f'<MeTa CoNtEnT="0;url={EVIL}>" HtTp-EqUiV=ReFrEsH>',
    "white space, a reference": f'<meta\ncontent\f=\t"0;url={EVIL}>"\rhttp-equiv = "&#114;efresh">',
    # ...or for where one stands: in foreign content, after comments a browser ends early.
    "svg": f'<svg><meta content="0;url={EVIL}>" http-equiv=refresh></svg>',
    "math": f'<math><mi><meta content="0;url={EVIL}>" http-equiv=refresh></mi></math>',
    "<!-->": f'<!--><meta content="0;url={EVIL}>" http-equiv=refresh>-->',
    "<!--->": f'<!---><meta content="0;url={EVIL}>" http-equiv=refresh>-->',
    "--!>": f'<!-- x --!><meta content="0;url={EVIL}>" http-equiv=refresh>-->',
    "after a quote in a name": f'<p a"><meta content="0;url={EVIL}>" http-equiv=refresh>">',
    # Text to a scan, a tag to a browser with scripting on (`</noscript>` ends its text).
    "in a value after </noscript>": (
        f"<noscript><a b=\"</noscript><meta content='0;url={EVIL}>' http-equiv=refresh>\">"
    ),
    # Put together by the pattern's own removal.
    "joined": f"<<meta http-equiv=a>meta http-equiv=refresh content=0;url={EVIL}>",
}


def html_reading(html: str) -> Reading:
    return read_parts(b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode())


@pytest.mark.parametrize("html", REFRESHES.values(), ids=REFRESHES.keys())
def test_a_refresh_is_removed_however_it_is_written(html: str) -> None:
    assert meta_equivs(html) != []  # a browser builds a meta with http-equiv from it
    for embed in (False, True):
        assert meta_equivs(served_html(html_reading(html), "01ID", embed=embed)) == []


@pytest.mark.parametrize("element", ["style", "script", "textarea", "title"])
def test_a_meta_in_text_is_removed_too(element: str) -> None:
    """A browser makes no element of it there; removing it does no harm."""
    html = f'<{element}><meta content="0;url={EVIL}>" http-equiv=refresh></{element}>'
    served = served_html(html_reading(html), "01ID", embed=False)
    assert served == f"<{element}></{element}>"


def test_remote_images_are_the_only_thing_remote_allowed() -> None:
    strict, remote = PREVIEW_POLICY.split("; "), REMOTE_IMAGES_POLICY.split("; ")
    assert "img-src 'self' data: https: http:" in remote
    assert set(strict) - set(remote) == {"img-src 'self' data:"}
    assert set(remote) - set(strict) == {"img-src 'self' data: https: http:"}
    assert "sandbox" in remote


LINKS = (
    b"From: News <news@example.org>\r\nTo: rcpt@example.net\r\nSubject: Links\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p><a href="https://example.org/a">one</a> <A HREF=https://example.org/b target=_self>two'
    b"</A> <a href='#' rel=opener>three</a></p><!-- <a href=x> --><script>'<a>'</script>\r\n"
)


async def test_embedded_html_opens_every_link_in_a_new_window(relay: Relay) -> None:
    await send(relay, [("news@example.org", ["rcpt@example.net"], LINKS)])
    plain = await call(relay, "GET", "/view/latest.html")
    assert plain.text == LINKS.split(b"\r\n\r\n", 1)[1].decode()  # as sent, without embed
    assert plain.headers["content-security-policy"].endswith("; sandbox")
    embedded = await call(relay, "GET", "/view/latest.html", params={"embed": "1"})
    new = ' target="_blank" rel="noreferrer noopener">'
    assert embedded.text == (
        f'<p><a href="https://example.org/a"{new}one</a> <A HREF=https://example.org/b{new}two'
        f"</A> <a href='#'{new}three</a></p><!-- <a href=x> --><script>'<a>'</script>\r\n"
    )
    policy = embedded.headers["content-security-policy"].split("; ")
    # The links may open their window, outside the sandbox; the page still runs nothing.
    assert policy[-1] == "sandbox allow-popups allow-popups-to-escape-sandbox"
    assert "default-src 'none'" in policy
    assert not any(directive.startswith("script-src") for directive in policy)


async def test_a_refresh_the_pattern_misses_is_not_served(relay: Relay) -> None:
    html = f'<html><head><meta charset="utf-8">{REFRESHES["quoted >"]}</head><body>Hi</body></html>'
    message = b"Subject: Refresh\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    await send(relay, [("news@example.org", ["rcpt@example.net"], message + b"\r\n")])
    for params in ({}, {"embed": "1"}):
        page = await call(relay, "GET", "/view/latest.html", params=params)
        assert page.text == '<html><head><meta charset="utf-8"></head><body>Hi</body></html>\r\n'
