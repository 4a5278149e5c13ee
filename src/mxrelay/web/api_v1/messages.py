"""`GET /api/v1/messages` and `GET /api/v1/search`: the message list, newest first, paged."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.search import SearchQuery, count_messages, parse_search, search_messages
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found, window
from mxrelay.web.api_v1.shapes import summary


class Messages:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def list(self, request: Request) -> Response:
        return await self._listing(request, SearchQuery())

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return PlainTextResponse("query is required", status_code=400)
        return await self._listing(request, parse_search(query))

    async def _listing(self, request: Request, query: SearchQuery) -> Response:
        try:
            database = self.context.store()
            offset, limit = window(request.query_params)
        except NoStore:
            return not_found()
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        found = await search_messages(database, query, limit=limit, offset=offset)
        total = await count_messages(database, SearchQuery())
        matching = total if query == SearchQuery() else await count_messages(database, query)
        # Nothing marks a message read yet, so every message counts as unread.
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


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Messages(context)
    return [
        Route("/api/v1/messages", resource.list),
        Route("/api/v1/search", resource.search),
    ]
