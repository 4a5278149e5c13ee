"""The message-log API under `/api/v1`, in Mailpit's shapes, one module per resource as Mailpit's
`server/apiv1/` has.

Each module has a resource class whose bound methods are the endpoints and a `routes()` that names
them; `api_routes` gathers them over one `ApiContext`. Without a store (passthrough mode) only
`/api/v1/info`, `/api/v1/webui` and `/api/v1/send` answer. The `/view/` routes (a message's bodies
alone, for UI tests) are Mailpit's too, outside `/api/v1`. mxrelay's own routes are under
`/api/v1/mxrelay/` (`mxrelay_*.py`), as is the delivery history at
`/api/v1/message/{ID}/deliveries`; the websocket of live events (`events.py`, at `/api/events`)
is gathered by the app itself (`web/asgi.py`), beside the hub that feeds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute

from mxrelay.health import Health
from mxrelay.store.backend import Database
from mxrelay.web.api_v1 import (
    deliveries,
    info,
    message,
    messages,
    mxrelay_audit,
    mxrelay_queue,
    mxrelay_refusals,
    release,
    send,
    swagger,
    tags,
    view,
    webui,
)
from mxrelay.web.api_v1.changes import Change, ignore_change
from mxrelay.web.api_v1.context import ApiContext
from mxrelay.web.api_v1.send import Sending

__all__ = ["ApiContext", "Sending", "api_routes"]


def api_routes(
    db: Callable[[], Database | None],
    *,
    info_facts: Callable[[], dict[str, Any]],
    started: float | None = None,
    sending: Sending | None = None,
    health: Health | None = None,
    on_change: Callable[[Change], None] = ignore_change,
) -> list[BaseRoute]:
    """Every `/api/v1` route; `db` returns the open store (None in passthrough mode), `sending`
    is the pipeline `/send` and `/release` submit to (none: those routes are absent); every
    change the routes make to the log is announced to the live events through the store and
    told to `on_change` (`changes.py`)."""
    context = ApiContext(
        db, info_facts, time.time() if started is None else started, on_change=on_change
    )
    return [
        *info.routes(context),
        *webui.routes(context),
        *messages.routes(context),
        *tags.routes(context),
        *message.routes(context),
        *deliveries.routes(context),
        *view.routes(context),
        *send.routes(sending),
        *release.routes(context, sending),
        *mxrelay_queue.routes(context, health),
        *mxrelay_refusals.routes(context),
        *mxrelay_audit.routes(context),
        *swagger.routes(),
    ]
