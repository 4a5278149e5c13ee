"""A read-only message-log API under `/api/v1`, shaped like Mailpit's where the calls overlap.

Mailpit's field names are kept (PascalCase in message objects, snake_case in the list wrapper), so
tools that read a Mailpit inbox can read mxrelay's log; what a production relay adds (delivery state
per recipient, every attempt) comes as extra fields and the `/deliveries` route. Nothing here writes:
deleting, tagging and releasing belong to the message-log capability still to come. Without a store
(passthrough mode) only `/api/v1/info` answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mxrelay import __version__
from mxrelay.mime.addresses import split_list
from mxrelay.mime.content import message_content
from mxrelay.store.backend import Database
from mxrelay.store.message_log import AttemptView, MessageView, get_message, get_raw
from mxrelay.store.search import MessageSummary, SearchQuery, count_messages, search_messages

MAX_LIMIT = 500
MAX_START = 2**63 - 1
"""The largest offset both databases take (a signed 64-bit integer): past it, 400, not a 500."""
NOT_FOUND = PlainTextResponse("404 page not found", status_code=404)


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def addresses(stored: str) -> list[dict[str, str]]:
    """Mailpit's address objects for a stored address list (addr-specs, comma-separated: the
    summary kept no display names). Split by one regular expression, not parsed again."""
    return [{"Name": "", "Address": address} for address in split_list(stored)]


def sender(header_from: str, mail_from: str) -> dict[str, str]:
    """Mailpit's `From`: the header's first address, else the envelope sender."""
    found = addresses(header_from)
    return found[0] if found else {"Name": "", "Address": mail_from}


def parse_search(query: str) -> SearchQuery:
    """`from:` (envelope sender), `to:` (a recipient), `status:` (a recipient's delivery state),
    `before:`/`after:` (Unix time); other words must all occur in subject, addresses or text."""
    fields: dict[str, Any] = {}
    words: list[str] = []
    for token in query.split():
        key, sep, value = token.partition(":")
        key = key.lower()
        if sep and value and key in ("from", "to", "status"):
            fields[{"from": "sender", "to": "recipient", "status": "state"}[key]] = value
        elif sep and value and key in ("before", "after"):
            try:
                fields[key] = float(value)
            except ValueError:
                words.append(token)
        else:
            words.append(token)
    return SearchQuery(text=" ".join(words) or None, **fields)


def summary(message: MessageSummary) -> dict[str, Any]:
    return {
        "ID": message.id,
        "MessageID": message.message_id_header.strip("<>"),
        "Read": message.seen,
        "From": sender(message.header_from, message.mail_from),
        "To": addresses(message.header_to),
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "Subject": message.subject,
        "Created": rfc3339(message.received_at),
        "Username": message.username or "",
        "Tags": [],
        "Size": message.size,
        "Attachments": message.attachments,
        "Snippet": message.snippet,
        "ReturnPath": message.mail_from,
    }


def attempt(view: AttemptView) -> dict[str, Any]:
    return {
        "Variant": view.variant,
        "Attempt": view.attempt,
        "Started": rfc3339(view.started_at),
        "Duration": round(view.duration, 3),
        "Transport": view.transport,
        "Outcome": view.outcome,
        "Code": view.code,
        "EnhancedStatus": view.enhanced,
        "Text": view.text,
        "RemoteID": view.remote_id,
        "HTTPStatus": view.http_status,
        "ErrorCode": view.error_code,
    }


def deliveries(view: MessageView) -> dict[str, Any]:
    return {
        "Recipients": [
            {
                "Variant": r.variant,
                "Address": r.address,
                "State": r.state,
                "Attempts": r.attempts,
                "Code": r.code,
                "EnhancedStatus": r.enhanced,
                "Text": r.text,
            }
            for r in view.recipients
        ],
        "Attempts": [attempt(a) for a in view.attempts],
        "Transforms": list(view.transforms),
        "TransformReports": list(view.transform_reports),
    }


VIEW_TEXT_LIMIT = 1024 * 1024
"""Decoded bytes of the text and of the HTML body shown in the message view (the whole message
is always at `/raw`)."""


def bodies(raw: bytes | None) -> tuple[str, str, list[dict[str, Any]]]:
    """Text body, HTML body and attachment list of a stored message (empty once pruned, or when
    its MIME structure is broken); bounded work (`mime.content`), never raises."""
    if raw is None:
        return "", "", []
    content = message_content(raw, VIEW_TEXT_LIMIT)
    files = [
        {"FileName": a.filename, "ContentType": a.content_type, "Size": a.size}
        for a in content.attachments
    ]
    return content.text, content.html, files


def message(view: MessageView, raw: bytes | None) -> dict[str, Any]:
    text, html, files = bodies(raw)
    return {
        "ID": view.id,
        "MessageID": view.message_id_header.strip("<>"),
        "From": sender(view.header_from, view.mail_from),
        "To": addresses(view.header_to),
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "ReturnPath": view.mail_from,
        "Subject": view.subject,
        "Date": rfc3339(view.received_at),
        "Tags": [],
        "Username": view.username or "",
        "Text": text,
        "HTML": html,
        "Size": view.size,
        "Inline": [],
        "Attachments": files,
        "SHA256": view.sha256,
        "Client": {"Address": view.client_address, "Helo": view.helo, "TLS": view.tls_version},
        "BodyPruned": view.body_pruned,
        "Delivery": deliveries(view),
    }


def api_routes(
    db: Callable[[], Database | None],
    *,
    info: Callable[[], dict[str, Any]],
    started: float | None = None,
) -> Sequence[Route]:
    """The routes; `db` returns the open store (None in passthrough mode)."""
    start = time.time() if started is None else started

    async def app_info(request: Request) -> Response:
        database = db()
        messages = await count_messages(database, SearchQuery()) if database else 0
        facts = info()
        stats: dict[str, Any] = {"Uptime": int(time.time() - start)}
        stats.update(facts.pop("RuntimeStats", {}))
        body: dict[str, Any] = {"Version": __version__, "Messages": messages, "Unread": messages}
        body.update({"Tags": {}, **facts, "RuntimeStats": stats})
        return JSONResponse(body)

    def store() -> Database:
        database = db()
        if database is None:
            raise LookupError
        return database

    def window(request: Request) -> tuple[int, int]:
        try:
            start_at = max(0, int(request.query_params.get("start", "0")))
            limit = min(MAX_LIMIT, max(1, int(request.query_params.get("limit", "50"))))
        except ValueError:
            raise ValueError("start and limit must be integers") from None
        if start_at > MAX_START:
            raise ValueError(f"start must be at most {MAX_START}")
        return start_at, limit

    async def listing(request: Request, query: SearchQuery) -> Response:
        try:
            database = store()
            offset, limit = window(request)
        except LookupError:
            return NOT_FOUND
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        found = await search_messages(database, query, limit=limit, offset=offset)
        total = await count_messages(database, SearchQuery())
        matching = total if query == SearchQuery() else await count_messages(database, query)
        # Nothing marks a message read in this read-only API, so every message counts as unread.
        return JSONResponse(
            {
                "total": total,
                "unread": total,
                "messages_count": matching,
                "messages_unread": matching,
                "start": offset,
                "tags": [],
                "count": len(found),
                "messages": [summary(m) for m in found],
            }
        )

    async def messages(request: Request) -> Response:
        return await listing(request, SearchQuery())

    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return PlainTextResponse("query is required", status_code=400)
        return await listing(request, parse_search(query))

    async def resolve(request: Request) -> tuple[Database, str] | None:
        try:
            database = store()
        except LookupError:
            return None
        ident = request.path_params["id"]
        if ident == "latest":
            latest = await search_messages(database, SearchQuery(), limit=1)
            if not latest:
                return None
            ident = latest[0].id
        return database, ident

    async def one(request: Request) -> Response:
        found = await resolve(request)
        view = await get_message(found[0], found[1]) if found else None
        if found is None or view is None:
            return NOT_FOUND
        raw = await get_raw(found[0], found[1])
        # Reading the bodies is CPU work proportional to the message: off the event loop.
        return JSONResponse(await asyncio.to_thread(message, view, raw))

    async def raw(request: Request) -> Response:
        found = await resolve(request)
        data = await get_raw(found[0], found[1]) if found else None
        if data is None:
            return NOT_FOUND
        headers = {}
        if request.query_params.get("dl") == "1":
            headers["Content-Disposition"] = (
                f'attachment; filename="{found[1] if found else "message"}.eml"'
            )
        return Response(data, media_type="text/plain; charset=utf-8", headers=headers)

    async def delivery(request: Request) -> Response:
        found = await resolve(request)
        view = await get_message(found[0], found[1]) if found else None
        if view is None:
            return NOT_FOUND
        return JSONResponse(deliveries(view))

    return [
        Route("/api/v1/info", app_info),
        Route("/api/v1/messages", messages),
        Route("/api/v1/search", search),
        Route("/api/v1/message/{id}", one),
        Route("/api/v1/message/{id}/raw", raw),
        Route("/api/v1/message/{id}/deliveries", delivery),
    ]
