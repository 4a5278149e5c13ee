"""A message's HTML and text bodies alone, for UI tests and the console's preview: Mailpit's
`/view/{ID}.html`, `.txt` and `/view/latest` (`server/handlers/messages.go`).

The HTML is the sender's, so it is served under a policy that keeps it inert: the Content
Security Policy sandboxes the document (an origin of its own, no scripts, no forms, no plugins)
and allows no remote resource, only the message's own inline images (linked to their parts, or
embedded with `?embed=1`) and inline styles; `?remote=1` allows remote images too, and nothing
else (the console's "Load remote images"). `<meta http-equiv>` tags are removed, because a
refresh would navigate the frame to anywhere, a remote load no policy of the page forbids (a
browser may refuse a refresh in a sandboxed page; the page does not count on it). They are found
twice over, last of all the rewrites: by a pattern, and by `mime/htmlmeta.py`, which reads tags as
a browser does in whatever markup surrounds them; other metas (`charset`, `viewport`) are kept.
Reading a message here marks it read, as in Mailpit.

`?embed=1` is for a page that frames the HTML: as in Mailpit, every link then opens in a new
window (`target="_blank" rel="noreferrer noopener"`), and the sandbox lets it open one (a window
of its own, outside the sandbox, that knows nothing of the page). Mailpit also adds a script that
posts the document's height to the framing page; no script runs here, so there is none.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.mime.htmlmeta import without_meta_equiv
from mxrelay.mime.htmltags import open_links_apart
from mxrelay.mime.parts import Part, Reading, read_parts
from mxrelay.web.api_v1.context import ApiContext, NoStore
from mxrelay.web.api_v1.message import Found, find_message, newest
from mxrelay.web.api_v1.reading import mark_read
from mxrelay.web.api_v1.requests import Answered


def preview_policy(*, embed: bool = False, remote: bool = False) -> str:
    """No script, no remote load, no form, no plugin; framed only by the UI itself. Embedded,
    a link may open a new window (each has `target="_blank"`): one outside the sandbox. With
    `remote`, images from anywhere too (asked for by `?remote=1`)."""
    sandbox = "sandbox allow-popups allow-popups-to-escape-sandbox" if embed else "sandbox"
    images = "img-src 'self' data: https: http:" if remote else "img-src 'self' data:"
    return "; ".join(
        (
            "default-src 'none'",
            images,
            "style-src 'unsafe-inline'",
            "font-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
            sandbox,
        )
    )


PREVIEW_POLICY = preview_policy()
REMOTE_IMAGES_POLICY = preview_policy(remote=True)


_META_EQUIV = re.compile(r"<meta(?>[^<>]{0,2000}http-equiv)[^<>]{0,2000}+>", re.I)
"""A `<meta` with `http-equiv` before the next `<` or `>`: it removes more than meta tags (a
`<metadata>` that mentions `http-equiv`), and misses a tag with a `>` in a quoted value, which
`without_meta_equiv` then finds. The same matches as `<meta[^<>]{0,2000}http-equiv[^<>]{0,2000}>`
without its backtracking over every `http-equiv` of a long tag."""
_REMOTE = re.compile(
    r"""(?:src|background|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)


def remote_references(html: str) -> int:
    """References to remote resources (images, style sheets, frames) in `html`: what the
    policy blocks unless remote images are asked for."""
    return len(_REMOTE.findall(html))


MESSAGE_NOT_FOUND = "Message not found"
NO_HTML = "This message does not contain a HTML part"
EMBED_LIMIT = 8 * 1024 * 1024
"""Bytes of inline images that `?embed=1` puts in the page (the rest stay links)."""


def link_inline_images(html: str, reading: Reading, message_id: str, *, embed: bool) -> str:
    """`cid:` references to the message's parts as links to them (relative to `/view/`), or with
    `embed` as `data:` URLs: Mailpit's `linkInlineImages`, with its pattern."""
    budget = EMBED_LIMIT
    for part in (*reading.inline, *reading.attachments):
        if not part.content_id:
            continue
        if embed and len(part.content) <= budget:
            budget -= len(part.content)
            target = _data_url(part)
        else:
            target = f"../api/v1/message/{quote(message_id)}/part/{quote(part.part_id)}"
        pattern = re.compile(
            r"(=[\"']?)(cid:" + re.escape(part.content_id) + r")([\"|'\\s/>;])", re.IGNORECASE
        )
        html = pattern.sub(_replacement(target), html)
    return html


def served_html(reading: Reading, message_id: str, *, embed: bool) -> str:
    """The page `/view/{ID}.html` answers: inline images linked (or embedded), embedded, every
    link opened in a new window (`mime/htmltags.py`), and then, so that no rewrite can bring one
    back, `<meta http-equiv>` removed."""
    page = link_inline_images(reading.html, reading, message_id, embed=embed)
    if embed:
        page = open_links_apart(page)
    return without_meta_equiv(_META_EQUIV.sub("", page))


def _replacement(target: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + target + match.group(3)

    return replace


def _data_url(part: Part) -> str:
    return f"data:{part.content_type};base64," + base64.b64encode(part.content).decode("ascii")


class View:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def _read(self, request: Request) -> tuple[Found, Reading] | Response:
        found = await find_message(self.context, request)
        if isinstance(found, Response):
            if found.status_code == 400:  # `latest?query=` beyond the search's bounds
                return found
            return PlainTextResponse(MESSAGE_NOT_FOUND, status_code=404)
        if found.raw is None:
            return PlainTextResponse(MESSAGE_NOT_FOUND, status_code=404)
        reading = await asyncio.to_thread(read_parts, found.raw)
        await mark_read(request, found.db, found.view.id)
        return found, reading

    async def html(self, request: Request) -> Response:
        read = await self._read(request)
        if isinstance(read, Response):
            return read
        found, reading = read
        if not reading.html:
            return PlainTextResponse(NO_HTML, status_code=404)
        embed = request.query_params.get("embed") == "1"
        page = await asyncio.to_thread(served_html, reading, found.view.id, embed=embed)
        remote = request.query_params.get("remote") == "1"
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": preview_policy(embed=embed, remote=remote),
                "X-Frame-Options": "SAMEORIGIN",
            },
        )

    async def text(self, request: Request) -> Response:
        read = await self._read(request)
        if isinstance(read, Response):
            return read
        return Response(
            read[1].text,
            media_type="text/plain; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    async def latest(self, request: Request) -> Response:
        """Mailpit's `/view/latest`: a redirect to the newest message's page (the page list when
        there is none)."""
        try:
            db = self.context.store()
        except NoStore:
            return RedirectResponse("../", status_code=302)
        try:
            ident = await newest(db, request)
        except Answered as answered:
            return answered.response
        target = f"../message/{quote(ident)}" if ident else "../"
        return RedirectResponse(target, status_code=302)


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = View(context)
    return [
        Route("/view/latest", resource.latest, methods=["GET"]),
        Route("/view/{id}.html", resource.html, methods=["GET"]),
        Route("/view/{id}.txt", resource.text, methods=["GET"]),
    ]
