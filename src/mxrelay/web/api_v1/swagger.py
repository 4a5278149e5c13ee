"""`GET /api/v1/swagger.json`: the OpenAPI document of every route (`openapi/`), as Mailpit serves
its own at that path."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.web.api_v1.openapi import document


class Swagger:
    def __init__(self) -> None:
        # The document is fixed for the life of the process: rendered once.
        self.body = json.dumps(document(), ensure_ascii=False).encode("utf-8")

    async def get(self, request: Request) -> Response:
        return Response(self.body, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/swagger.json", Swagger().get)]
