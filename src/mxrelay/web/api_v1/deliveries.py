"""`GET /api/v1/message/{ID}/deliveries`: mxrelay's own route, each recipient's delivery state and
every delivery attempt of one message (Mailpit has no such data), and, for a copy released from
another message, that message's ID (`ReleasedFrom`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.message_log import AttemptView, MessageView, get_message
from mxrelay.store.releases import released_from
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found, rfc3339


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


def deliveries(view: MessageView, released_from: str | None = None) -> dict[str, Any]:
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
        "ReleasedFrom": released_from,
    }


class Deliveries:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def get(self, request: Request) -> Response:
        try:
            database = self.context.store()
        except NoStore:
            return not_found()
        view = await get_message(database, request.path_params["id"])
        if view is None:
            return not_found()
        return JSONResponse(deliveries(view, await released_from(database, view.id)))


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Deliveries(context)
    return [Route("/api/v1/message/{id}/deliveries", resource.get)]
