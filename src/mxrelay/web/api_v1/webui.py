"""`GET /api/v1/webui`: Mailpit's WebUIConfiguration, with exactly its keys and truthful values.

Releasing works wherever the relay keeps a log (`POST /api/v1/message/{ID}/release` puts a copy
through the relay's own checks, store and queue), so `MessageRelay.Enabled` says whether there is a
log; Mailpit's relay settings (its own SMTP server, allow and block lists, From override) have no
counterpart and stay empty. Not configured either: SpamAssassin, no chaos triggers, no duplicate
filter, no label; the delete-all button is not hidden.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.web.api_v1.context import ApiContext


def web_ui_configuration(releases: bool) -> dict[str, Any]:
    return {
        "Label": "",
        "MessageRelay": {
            "Enabled": releases,
            "SMTPServer": "",
            "ReturnPath": "",
            "AllowedRecipients": "",
            "BlockedRecipients": "",
            "OverrideFrom": "",
            "PreserveMessageIDs": False,
            "RecipientAllowlist": "",
        },
        "SpamAssassin": False,
        "ChaosEnabled": False,
        "DuplicatesIgnored": False,
        "HideDeleteAllButton": False,
    }


class WebUi:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def get(self, request: Request) -> Response:
        return JSONResponse(web_ui_configuration(self.context.db() is not None))


def routes(context: ApiContext) -> list[BaseRoute]:
    return [Route("/api/v1/webui", WebUi(context).get, methods=["GET"])]
