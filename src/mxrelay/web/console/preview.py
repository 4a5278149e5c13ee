"""A message's HTML and parts as the console's frame and links ask for them.

`/message/{id}/preview` answers the HTML body under `policy.preview` (sandboxed, no script, no
remote load unless `remote=1`), framable by the console alone; `/message/{id}/part/{part}`
answers one part under `policy.ATTACHMENT`, as a download, or (`inline=1`, raster images only)
for an `<img>`. Both are the console's stand-ins for the API's `/view/{ID}.html` and
`/api/v1/message/{ID}/part/{PartID}`, with the same part numbering.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.message_log import get_raw
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.parts import html_preview, leaf_parts, part_body
from mxrelay.web.console.policy import ATTACHMENT, preview, with_policy

PART_LIMIT = 64 * 1024 * 1024
"""Decoded bytes of one part served (a message is at most MXRELAY_MAX_MESSAGE_SIZE anyway)."""

_PART_ID = re.compile(r"^[1-9][0-9]{0,4}(\.[1-9][0-9]{0,4}){0,39}$")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]")

EMPTY_PREVIEW = (
    "<!doctype html><meta charset=utf-8><p style='font:14px sans-serif;color:#888'>"
    "This message has no HTML body.</p>"
)


def not_found() -> Response:
    return PlainTextResponse("404 page not found", status_code=404)


class Preview:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def _raw(self, request: Request) -> tuple[str, bytes] | None:
        database = self.context.db()
        message_id = str(request.path_params["id"])[:64]
        raw = await get_raw(database, message_id) if database else None
        return None if raw is None else (message_id, raw)

    async def html(self, request: Request) -> Response:
        found = await self._raw(request)
        if found is None:
            return not_found()
        shown = await asyncio.to_thread(html_preview, found[1])
        remote = request.query_params.get("remote") == "1"
        response = HTMLResponse(shown.html if shown else EMPTY_PREVIEW)
        response.headers["cache-control"] = "no-store"
        response.headers["referrer-policy"] = "no-referrer"
        return with_policy(response, preview(remote_images=remote), framable=True)

    async def part(self, request: Request) -> Response:
        part_id = str(request.path_params["part"])
        if not _PART_ID.match(part_id):
            return not_found()
        found = await self._raw(request)
        if found is None:
            return not_found()
        message_id, raw = found

        def read() -> tuple[str, str, bytes] | None:
            for part, entity in leaf_parts(raw)[0]:
                if part.part_id == part_id:
                    return part.content_type, part.filename, part_body(raw, entity, PART_LIMIT)
            return None

        located = await asyncio.to_thread(read)
        if located is None:
            return not_found()
        content_type, filename, body = located
        inline = request.query_params.get("inline") == "1" and content_type in (
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
        )
        name = _UNSAFE_FILENAME.sub("_", filename)[:200] or f"{message_id}-part-{part_id}"
        disposition = "inline" if inline else "attachment"
        headers = {
            "content-disposition": f"{disposition}; filename=\"{name}\"; filename*=UTF-8''"
            + quote(filename[:200] or name),
            "cache-control": "private, max-age=300",
        }
        media_type = content_type if inline else "application/octet-stream"
        response = Response(body, media_type=media_type, headers=headers)
        return with_policy(response, ATTACHMENT)


def routes(context: ConsoleContext) -> list[BaseRoute]:
    resource = Preview(context)
    return [
        Route("/message/{id}/preview", resource.html),
        Route("/message/{id}/part/{part}", resource.part),
    ]
