"""One message, as Mailpit's `server/apiv1/message.go` and `thumbnails.go` serve it.

`GET /api/v1/message/{ID}` (marks it read), `/headers`, `/raw`, `/part/{PartID}` and
`/part/{PartID}/thumb`; `latest` (with an optional `?query=` search) stands for the newest
message everywhere. Parsing, hashing and thumbnails are CPU work proportional to the message: they
run in threads, and at most `THUMBNAIL_WORKERS` thumbnails are drawn at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.mime.parts import Part, read_parts
from mxrelay.mime.thumbnail import thumbnail
from mxrelay.store.backend import Database
from mxrelay.store.mailbox import message_tags
from mxrelay.store.message_log import MessageView, get_message, get_raw
from mxrelay.store.schema import ID_LENGTH
from mxrelay.store.search import search_messages
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found
from mxrelay.web.api_v1.messages import optional_search
from mxrelay.web.api_v1.reading import mark_read
from mxrelay.web.api_v1.requests import Answered
from mxrelay.web.api_v1.shapes import headers, message

THUMBNAIL_WORKERS = 2

UNSAFE_INLINE_TYPES = frozenset(
    {
        "text/html",
        "text/xml",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/xml",
        "text/xsl",
    }
)
"""Types a browser would render as a document in the UI's origin: sent as a download instead,
as Mailpit sends them."""

MESSAGE_NOT_FOUND = "Message not found"
"""Mailpit's text when `latest` finds no message."""
NO_ROWS = "sql: no rows in result set"
"""Mailpit's thumbnail route answers 400 with its database's error text for an unknown message
(Go's `sql.ErrNoRows`), and `attachment not found` for an unknown part."""


@dataclass(frozen=True, slots=True)
class Found:
    db: Database
    view: MessageView
    raw: bytes | None
    """The message as received; None once its body was pruned."""


async def newest(db: Database, request: Request) -> str | None:
    """The id `latest` stands for: the newest message, or the newest match of `?query=`, read
    as `GET /api/v1/search` reads it (in the `tz` zone; `Answered` with 400 beyond the bounds)."""
    found = await search_messages(db, optional_search(request.query_params), limit=1)
    return found[0].id if found else None


async def find_message(context: ApiContext, request: Request) -> Found | Response:
    """The message a request's `{id}` names, or Mailpit's 404 answer."""
    try:
        db = context.store()
    except NoStore:
        return not_found()
    ident: str | None = str(request.path_params["id"])
    if ident == "latest":
        try:
            ident = await newest(db, request)
        except Answered as answered:
            return answered.response
        if ident is None:
            return PlainTextResponse(MESSAGE_NOT_FOUND, status_code=404)
    view = await get_message(db, ident) if ident and len(ident) <= ID_LENGTH else None
    if view is None:
        return not_found()
    return Found(db, view, await get_raw(db, view.id))


def message_response(view: MessageView, raw: bytes | None, tags: Sequence[str]) -> Response:
    return JSONResponse(message(view, raw, tags))


def disposition(kind: str, filename: str) -> str:
    """A Content-Disposition with the file name escaped as Go's `url.PathEscape` escapes it
    (nothing in it can break out of the quotes or the header)."""
    return f'{kind}; filename="{quote(filename, safe="$&+:=@")}"'


class Message:
    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self.drawing = asyncio.Semaphore(THUMBNAIL_WORKERS)

    async def get(self, request: Request) -> Response:
        found = await find_message(self.context, request)
        if isinstance(found, Response):
            return found
        ident = found.view.id
        tags = await message_tags(found.db, ident)
        # Parsing, hashing and encoding (a body may be megabytes of JSON) off the event loop.
        response = await asyncio.to_thread(message_response, found.view, found.raw, tags)
        await mark_read(request, found.db, ident)
        return response

    async def headers(self, request: Request) -> Response:
        found = await find_message(self.context, request)
        if isinstance(found, Response):
            return found
        if found.raw is None:
            return not_found()
        return JSONResponse(await asyncio.to_thread(headers, found.view, found.raw))

    async def raw(self, request: Request) -> Response:
        found = await find_message(self.context, request)
        if isinstance(found, Response):
            return found
        if found.raw is None:
            return not_found()
        sent = {"X-Content-Type-Options": "nosniff"}
        if request.query_params.get("dl") == "1":
            sent["Content-Disposition"] = f'attachment; filename="{found.view.id}.eml"'
        return Response(found.raw, media_type="text/plain; charset=utf-8", headers=sent)

    async def _find_part(self, request: Request) -> tuple[Found | Response, Part | None]:
        found = await find_message(self.context, request)
        if isinstance(found, Response) or found.raw is None:
            return found, None
        reading = await asyncio.to_thread(read_parts, found.raw)
        return found, reading.part(str(request.path_params["part"]))

    async def part(self, request: Request) -> Response:
        found, part = await self._find_part(request)
        if isinstance(found, Response):
            return found
        if part is None:
            return not_found()
        kind, shown = part.content_type, "inline"
        if kind in UNSAFE_INLINE_TYPES:
            kind, shown = "application/octet-stream", "attachment"
        return Response(
            part.content,
            headers={
                "Content-Type": kind or "application/octet-stream",
                "Content-Disposition": disposition(shown, part.filename or part.content_id),
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def thumb(self, request: Request) -> Response:
        found, part = await self._find_part(request)
        if part is None:
            text = NO_ROWS if isinstance(found, Response) else "attachment not found"
            return PlainTextResponse(text, status_code=400)
        async with self.drawing:
            image = await asyncio.to_thread(thumbnail, part.content, part.content_type)
        name = quote(part.filename or part.content_id, safe="$&+:=@")
        return Response(
            image, media_type="image/jpeg", headers={"Content-Disposition": f'filename="{name}"'}
        )


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Message(context)
    return [
        Route("/api/v1/message/{id}", resource.get, methods=["GET"]),
        Route("/api/v1/message/{id}/headers", resource.headers, methods=["GET"]),
        Route("/api/v1/message/{id}/raw", resource.raw, methods=["GET"]),
        Route("/api/v1/message/{id}/part/{part}", resource.part, methods=["GET"]),
        Route("/api/v1/message/{id}/part/{part}/thumb", resource.thumb, methods=["GET"]),
    ]
