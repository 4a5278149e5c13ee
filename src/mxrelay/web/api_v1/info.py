"""`GET /api/v1/info`: Mailpit's AppInformation, with truthful values."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay import __version__
from mxrelay.store.search import SearchQuery, count_messages
from mxrelay.web.api_v1.context import ApiContext


class Info:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def get(self, request: Request) -> Response:
        database = self.context.db()
        messages = await count_messages(database, SearchQuery()) if database else 0
        facts = self.context.info()
        stats: dict[str, Any] = {"Uptime": int(time.time() - self.context.started)}
        stats.update(facts.pop("RuntimeStats", {}))
        body: dict[str, Any] = {"Version": __version__, "Messages": messages, "Unread": messages}
        body.update({"Tags": {}, **facts, "RuntimeStats": stats})
        return JSONResponse(body)


def routes(context: ApiContext) -> list[BaseRoute]:
    return [Route("/api/v1/info", Info(context).get)]
