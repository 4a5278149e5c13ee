"""`GET /api/v1/webui`: Mailpit's WebUIConfiguration, with exactly its keys and truthful values.

None of the Mailpit features it describes is configured in the relay: no SMTP relay of Mailpit's
kind (the relay's own delivery is its queue), no SpamAssassin, no chaos triggers, no duplicate
filter, no label; the delete-all button is not hidden.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.web.api_v1.context import ApiContext


def web_ui_configuration() -> dict[str, Any]:
    return {
        "Label": "",
        "MessageRelay": {
            "Enabled": False,
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
        return JSONResponse(web_ui_configuration())


def routes(context: ApiContext) -> list[BaseRoute]:
    return [Route("/api/v1/webui", WebUi(context).get, methods=["GET"])]
