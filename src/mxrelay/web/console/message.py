"""One message, in tabs: the HTML preview, the text, the headers, the raw source, the parts,
what each recipient group received, the delivery timeline, and the session it came on.

A tab is a URL (`?tab=`), so each can be linked to and works without script; htmx swaps the
panel alone (`#panel`) and refreshes the delivery tabs when the relay reports a delivery. The
message's bytes are read only for the tabs that show them, and parsed off the event loop.

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

from mxrelay.mime.content import message_content
from mxrelay.store.console import message_extras
from mxrelay.store.message_log import get_message, get_raw
from mxrelay.web.api_v1.reading import mark_read
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.messages import transform_labels
from mxrelay.web.console.parts import Part, header_fields, html_preview, leaf_parts
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
SOURCE_LIMIT = 256 * 1024
"""Bytes of the raw source shown in the page (the whole of it is a download)."""


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    has_html: bool
    remote: int
    headers: list[tuple[str, str]]
    source: str
    source_cut: bool
    parts: list[Part]
    broken: str | None


def read_body(raw: bytes) -> Body:
    content = message_content(raw, TEXT_LIMIT)
    shown = html_preview(raw)
    parts, broken = leaf_parts(raw)
    return Body(
        text=content.text,
        has_html=shown is not None,
        remote=shown.remote if shown else 0,
        headers=header_fields(raw),
        source=raw[:SOURCE_LIMIT].decode("utf-8", "replace"),
        source_cut=len(raw) > SOURCE_LIMIT,
        parts=[p for p, _ in parts],
        broken=broken,
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
            await mark_read(database, message_id)
        return page(self.context, request, template, section="messages", **values)


def routes(context: ConsoleContext) -> list[BaseRoute]:
    resource = Message(context)
    return [Route("/message/{id}", resource.show)]
