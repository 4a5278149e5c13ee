"""One message: `GET /api/v1/message/{ID}` (or `latest`) and its raw source."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.backend import Database
from mxrelay.store.message_log import get_message, get_raw
from mxrelay.store.search import SearchQuery, search_messages
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found
from mxrelay.web.api_v1.shapes import message


class Message:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def _resolve(self, request: Request) -> tuple[Database, str] | None:
        try:
            database = self.context.store()
        except NoStore:
            return None
        ident = str(request.path_params["id"])
        if ident == "latest":
            latest = await search_messages(database, SearchQuery(), limit=1)
            if not latest:
                return None
            ident = latest[0].id
        return database, ident

    async def get(self, request: Request) -> Response:
        found = await self._resolve(request)
        view = await get_message(found[0], found[1]) if found else None
        if found is None or view is None:
            return not_found()
        raw = await get_raw(found[0], found[1])
        # Reading the bodies is CPU work proportional to the message: off the event loop.
        return JSONResponse(await asyncio.to_thread(message, view, raw))

    async def raw(self, request: Request) -> Response:
        found = await self._resolve(request)
        data = await get_raw(found[0], found[1]) if found else None
        if found is None or data is None:
            return not_found()
        headers = {}
        if request.query_params.get("dl") == "1":
            headers["Content-Disposition"] = f'attachment; filename="{found[1]}.eml"'
        return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Message(context)
    return [
        Route("/api/v1/message/{id}", resource.get),
        Route("/api/v1/message/{id}/raw", resource.raw),
    ]
