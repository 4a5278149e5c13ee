"""Tags, as Mailpit's `server/apiv1/tags.go` has them: `GET /api/v1/tags` (every tag in use),
`PUT /api/v1/tags` (replace the tags of messages), `PUT /api/v1/tags/{Tag}` (rename) and
`DELETE /api/v1/tags/{Tag}` (the messages stay). The rules (cleaning, case-insensitive names)
are `store/tags.py`'s; the errors are Mailpit's words with 400.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store import tags
from mxrelay.web.api_v1.changes import TagsChanged, TagsPruned
from mxrelay.web.api_v1.context import ApiContext
from mxrelay.web.api_v1.gojson import STRING, STRINGS, Field
from mxrelay.web.api_v1.requests import (
    Answered,
    answering,
    bad_request,
    body_fields,
    bounded_ids,
    ok,
    opened,
)
from mxrelay.web.audit import audit

SET_BODY = (Field("Tags", STRINGS), Field("IDs", STRINGS))
RENAME_BODY = (Field("Name", STRING),)
NAME_LIMIT = 1024
"""Characters of a tag name in a path read at all (a longer one names no tag)."""


class Tags:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    @answering
    async def list(self, request: Request) -> Response:
        return JSONResponse(await tags.list_tags(opened(self.context)))

    @answering
    async def set(self, request: Request) -> Response:
        """Replace the tags of `IDs` with `Tags` (none: clear them)."""
        database = opened(self.context)
        fields = await body_fields(request, SET_BODY)
        ids = bounded_ids(fields.texts("IDs"))
        if ids:
            changed = await tags.set_tags(database, ids, fields.texts("Tags"))
            if changed:
                news = {ident: tuple(names) for ident, names in changed.items()}
                await self.context.report(TagsChanged(news))
            await audit(request, action="tag", target=ids, count=len(changed))
        return ok()

    @answering
    async def rename(self, request: Request) -> Response:
        database = opened(self.context)
        fields = await body_fields(request, RENAME_BODY)
        await self._changed(tags.rename_tag(database, self._tag(request), fields.text("Name")))
        await audit(request, action="rename tag", target=self._tag(request))
        return ok()

    @answering
    async def delete(self, request: Request) -> Response:
        await self._changed(tags.delete_tag(opened(self.context), self._tag(request)))
        await audit(request, action="delete tag", target=self._tag(request))
        return ok()

    @staticmethod
    def _tag(request: Request) -> str:
        return str(request.path_params["tag"])[:NAME_LIMIT]

    async def _changed(self, change: Awaitable[None]) -> None:
        try:
            await change
        except tags.TagError as exc:
            raise Answered(bad_request(str(exc))) from None
        await self.context.report(TagsPruned())


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Tags(context)
    return [
        Route("/api/v1/tags", resource.list, methods=["GET"]),
        Route("/api/v1/tags", resource.set, methods=["PUT"]),
        Route("/api/v1/tags/{tag}", resource.rename, methods=["PUT"]),
        Route("/api/v1/tags/{tag}", resource.delete, methods=["DELETE"]),
    ]
