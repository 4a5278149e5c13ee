"""The message list, as Mailpit's `server/apiv1/messages.go` has it: `GET /api/v1/messages` and
`GET /api/v1/search` (a page, newest first, with the counts), `PUT /api/v1/messages` (read
flags: some messages, a search's matches, or all), `DELETE /api/v1/messages` and
`DELETE /api/v1/search`.

Mailpit's behaviour is kept where clients rely on it: `start` and `limit` that are not numbers
are their defaults, not an error; a `before` or `tz` that cannot be read is ignored; a `PUT`
with neither IDs nor a search marks every message; a `DELETE` whose body is empty, missing or not
the JSON it expects deletes every message (test suites empty the mailbox that way). Bounds
Mailpit does not have answer before any of that (`requests.py`): a body over `BODY_LIMIT` is
refused with 413 (never read as "delete everything"), more than `MAX_IDS` ids or a query beyond
the search's bounds with 400, and `limit` is at most `MAX_LIMIT`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store import deletion, flags
from mxrelay.store.listing import Page, list_page
from mxrelay.store.search import MAX_QUERY_LENGTH, MAX_TERMS, SearchQuery, parse_search
from mxrelay.store.search_values import parse_date
from mxrelay.web.api_v1.changes import MessagesDeleted, ReadChanged
from mxrelay.web.api_v1.context import MAX_LIMIT, ApiContext
from mxrelay.web.api_v1.gojson import BOOL, STRING, STRINGS, Field, GoJsonError, decode
from mxrelay.web.api_v1.requests import (
    Answered,
    answering,
    bad_request,
    body_fields,
    bounded_ids,
    ok,
    opened,
    read_body,
)
from mxrelay.web.api_v1.shapes import summary
from mxrelay.web.audit import audit

MAX_START = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
_ZONE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+){0,2}")

READ_BODY = (Field("Read", BOOL), Field("IDs", STRINGS), Field("Search", STRING))
DELETE_BODY = (Field("IDs", STRINGS),)
NO_QUERY = "Error: no search query"
BOTH = "You may specify either IDs or a search query, not both"


def go_int(text: str | None) -> int | None:
    """Go's `strconv.Atoi`: an optional sign and decimal digits, within 64 bits; else None."""
    if text is None or _INTEGER.fullmatch(text) is None:
        return None
    number = int(text)
    return number if -(2**63) <= number <= MAX_START else None


def window(params: Mapping[str, str]) -> tuple[int, int]:
    """Mailpit's `getStartLimit`: `start` (0 unless a positive number) and `limit` (50 unless a
    positive number; at most MAX_LIMIT here)."""
    start = go_int(params.get("start"))
    limit = go_int(params.get("limit"))
    return (
        start if start is not None and start > 0 else 0,
        min(limit, MAX_LIMIT) if limit is not None and limit > 0 else 50,
    )


def before_param(params: Mapping[str, str]) -> float | None:
    """`before`: a date, or Unix seconds or milliseconds; ignored when it cannot be read."""
    value = params.get("before", "")
    return parse_date(value.upper(), UTC) if value else None


def zone(params: Mapping[str, str]) -> tzinfo:
    """`tz`: an IANA time zone for the dates of a search; UTC when absent or unknown (Mailpit
    ignores one it cannot load)."""
    name = params.get("tz", "")
    if not name or len(name) > 64 or _ZONE.fullmatch(name) is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        return UTC


def search_param(params: Mapping[str, str], text: str | None = None) -> SearchQuery:
    """The search of `query` (or `text`), read in the `tz` zone: 400 when it is blank (Mailpit's
    words) or beyond the bounds of `search_terms` (Mailpit has none)."""
    wanted = (params.get("query", "") if text is None else text).strip()
    if not wanted:
        raise Answered(bad_request(NO_QUERY))
    return optional_search(params, wanted)


def optional_search(params: Mapping[str, str], text: str | None = None) -> SearchQuery:
    """`search_param` where a blank search is every message (`latest?query=`, as Mailpit reads
    it): the same zone and bounds, so the same query finds the same messages on every route."""
    wanted = (params.get("query", "") if text is None else text).strip()
    query = parse_search(wanted, zone(params))
    if query.truncated:
        raise Answered(
            bad_request(
                f"search query too long (at most {MAX_QUERY_LENGTH} characters and "
                f"{MAX_TERMS} terms)"
            )
        )
    return query


def page_body(page: Page, start: int) -> dict[str, Any]:
    """Mailpit's MessagesSummary."""
    return {
        "total": page.mailbox.total,
        "unread": page.mailbox.unread,
        "count": len(page.messages),
        "messages_count": page.matching.total,
        "messages_unread": page.matching.unread,
        "start": start,
        "tags": list(page.tags),
        "messages": [summary(m) for m in page.messages],
    }


class Messages:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def _page(self, request: Request, query: SearchQuery | None) -> Response:
        database = opened(self.context)
        params = request.query_params
        start, limit = window(params)
        before = before_param(params)
        if query is None:
            page = await list_page(database, start=start, limit=limit, before=before)
        else:
            page = await list_page(database, query, start=start, limit=limit, before=before)
        return JSONResponse(page_body(page, start))

    @answering
    async def list(self, request: Request) -> Response:
        return await self._page(request, None)

    @answering
    async def search(self, request: Request) -> Response:
        opened(self.context)
        return await self._page(request, search_param(request.query_params))

    @answering
    async def mark(self, request: Request) -> Response:
        """`PUT /api/v1/messages`: `Read` for `IDs`, for a `Search`'s matches, or for all."""
        database = opened(self.context)
        fields = await body_fields(request, READ_BODY)
        ids = bounded_ids(fields.texts("IDs"))
        search = fields.text("Search")
        read = fields.boolean("Read")
        action = "mark read" if read else "mark unread"
        if ids and search:
            return bad_request(BOTH)
        if search:
            query = search_param(request.query_params, search)
            changed = await flags.mark_matching(database, query, read)
            told = changed.ids  # Mailpit marks, and tells of, the matches that change
        elif not ids:
            changed = await flags.mark_all(database, read)
            await self.context.report(ReadChanged(changed.ids, read, everything=True))
            await audit(request, action=action, target="all", count=changed.count)
            return ok()
        else:
            changed = await flags.mark(database, ids, read)
            told = tuple(ids)  # Mailpit tells of every ID named, changed or not
        await self.context.report(ReadChanged(told, read))
        await audit(request, action=action, target=ids or search, count=changed.count)
        return ok()

    @answering
    async def delete(self, request: Request) -> Response:
        """`DELETE /api/v1/messages`: `IDs`, or every message when the body names none."""
        database = opened(self.context)
        body = await read_body(request)
        try:
            ids = bounded_ids(decode(body, DELETE_BODY).texts("IDs"))
        except GoJsonError:
            ids = []  # as Mailpit: a body it cannot read deletes everything
        now = self.context.clock()
        if ids:
            deleted = await deletion.delete_messages(database, ids, now=now)
            await self.context.report(MessagesDeleted(deleted.ids, count=deleted.count))
        else:
            deleted = await deletion.delete_all(database, now=now)
            await self.context.report(MessagesDeleted(deleted.ids, True, deleted.count))
        await audit(request, action="delete", target=ids or "all", count=deleted.count)
        return ok()

    @answering
    async def delete_search(self, request: Request) -> Response:
        database = opened(self.context)
        query = search_param(request.query_params)
        deleted = await deletion.delete_matching(database, query, now=self.context.clock())
        await self.context.report(MessagesDeleted(deleted.ids, count=deleted.count))
        target = f"query={request.query_params.get('query', '')}"
        await audit(request, action="delete", target=target, count=deleted.count)
        return ok()


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Messages(context)
    return [
        Route("/api/v1/messages", resource.list, methods=["GET"]),
        Route("/api/v1/messages", resource.mark, methods=["PUT"]),
        Route("/api/v1/messages", resource.delete, methods=["DELETE"]),
        Route("/api/v1/search", resource.search, methods=["GET"]),
        Route("/api/v1/search", resource.delete_search, methods=["DELETE"]),
    ]
