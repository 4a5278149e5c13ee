"""One message, in tabs: the HTML preview, the text, the headers, the raw source, the parts,
what each recipient group received, the delivery timeline, and the session it came on.

A tab is a URL (`?tab=`), so each can be linked to and works without script; htmx swaps the
panel alone (`#panel`) and refreshes the delivery tabs when the relay reports a delivery. The
message's bytes are read only for the tabs that show them, and parsed off the event loop. The
page writes the text, the header fields and the start of the source as text; whatever else the
browser loads of a message comes from the API's routes: the HTML from `/view/{ID}.html` in a
sandboxed frame, each part from `/api/v1/message/{ID}/part/{PartID}`, the source from `/raw`.

Opening the page marks the message read, as Mailpit's UI does, through the API's own
`reading.mark_read` (so every open list and websocket client is told); a tab or a refresh of the
page's parts does not, so a message an operator marked unread while looking at it stays unread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.mime.parts import Part, read_parts
from mxrelay.mime.text import decode_words
from mxrelay.store.console import message_extras
from mxrelay.store.message_log import get_message, get_raw
from mxrelay.web.api_v1.reading import mark_read
from mxrelay.web.api_v1.view import remote_references
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.messages import transform_labels
from mxrelay.web.console.render import is_fragment, page

TABS = (
    ("html", "HTML"),
    ("text", "Text"),
    ("headers", "Headers"),
    ("source", "Source"),
    ("parts", "Attachments"),
    ("recipients", "Recipients"),
    ("timeline", "Delivery"),
    ("session", "Session"),
)
NEEDS_BODY = frozenset({"html", "text", "headers", "source", "parts"})
TEXT_LIMIT = 1024 * 1024
"""Characters of the text body shown in the page."""
HEADER_VALUE_LIMIT = 16 * 1024
"""Characters shown of one header field's value."""
SOURCE_LIMIT = 256 * 1024
"""Bytes of the raw source shown in the page (the whole of it is a download)."""
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Parts shown as images in the page. SVG is not among them: it is a document that can hold
script, and the API serves it only as a download."""


@dataclass(frozen=True, slots=True)
class Shown:
    """A part as the Attachments tab lists it; `part_id` is the API's (`/part/{PartID}`)."""

    part_id: str
    content_type: str
    filename: str
    disposition: str
    content_id: str
    size: int
    """Decoded bytes."""
    image: bool

    @classmethod
    def of(cls, part: Part) -> Shown:
        kind = part.content_type
        return cls(
            part.part_id,
            kind,
            part.filename,
            part.disposition,
            part.content_id,
            len(part.content),
            kind in IMAGE_TYPES,
        )


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    has_html: bool
    remote: int
    """References to remote resources in the HTML, blocked until the operator asks."""
    headers: list[tuple[str, str]]
    source: str
    source_cut: bool
    files: list[Shown]
    """Attachments, and inline parts that are not images, each a download."""
    images: list[Shown]
    """Inline images."""
    parts: list[Shown]
    """Every leaf part, in document order."""
    truncated: bool
    """Past the parser's bounds: the parts after them are not listed."""


def read_body(raw: bytes) -> Body:
    """What the body tabs show, read as the API reads a message (`mime.parts`), so the parts
    listed are the ones the API's part route serves. The HTML itself is the API's
    `/view/{ID}.html`, framed by the page."""
    reading = read_parts(raw)
    inline = [Shown.of(p) for p in reading.inline]
    return Body(
        text=reading.text[:TEXT_LIMIT],
        has_html=bool(reading.html),
        remote=remote_references(reading.html),
        headers=[
            (name, decode_words(value[:HEADER_VALUE_LIMIT]))
            for name, value in reading.root.fields.items
        ],
        source=raw[:SOURCE_LIMIT].decode("utf-8", "replace"),
        source_cut=len(raw) > SOURCE_LIMIT,
        files=[Shown.of(p) for p in reading.attachments] + [p for p in inline if not p.image],
        images=[p for p in inline if p.image],
        parts=[Shown.of(p) for p in reading.root.depth_first() if not p.is_multipart],
        truncated=reading.truncated,
    )


def list_query(back: str) -> str:
    """The list's query string to go back to (`?q=…&page=…`); anything else is dropped, so the
    link cannot lead off the console (`//host` would)."""
    return back[:2000] if back.startswith("?") else ""


class Message:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def show(self, request: Request) -> Response:
        database = self.context.db()
        message_id = str(request.path_params["id"])[:64]
        view = await get_message(database, message_id) if database else None
        if database is None or view is None:
            return page(self.context, request, "not_found.html", status=404, section="messages")
        tab = request.query_params.get("tab", "")
        if tab not in dict(TABS):
            tab = "html"
        extras = await message_extras(database, message_id)
        values: dict[str, Any] = {
            "m": view,
            "extras": extras,
            "tab": tab,
            "tabs": TABS,
            "remote": request.query_params.get("remote") == "1",
            "transforms": transform_labels(view.transforms),
            "back": list_query(request.query_params.get("back", "")),
            "body": None,
            "pruned": view.body_pruned,
        }
        if tab in NEEDS_BODY:
            raw = await get_raw(database, message_id)
            values["body"] = None if raw is None else await asyncio.to_thread(read_body, raw)
        template = "message.html"
        if is_fragment(request, "panel"):
            template = "_message_panel.html"
        elif is_fragment(request, "message-body"):
            template = "_message_body.html"
        elif extras is not None and not extras.seen:
            await mark_read(request, database, message_id)
        return page(self.context, request, template, section="messages", **values)


def routes(context: ConsoleContext) -> list[BaseRoute]:
    resource = Message(context)
    return [Route("/message/{id}", resource.show)]
