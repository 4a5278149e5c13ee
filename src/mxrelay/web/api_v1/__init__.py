"""The message-log API under `/api/v1`, in Mailpit's shapes, one module per resource as Mailpit's
`server/apiv1/` has.

Each module has a resource class whose bound methods are the endpoints and a `routes()` that names
them; `api_routes` gathers them over one `ApiContext`. Without a store (passthrough mode) only
`/api/v1/info` answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute

from mxrelay.store.backend import Database
from mxrelay.web.api_v1 import deliveries, info, message, messages, swagger
from mxrelay.web.api_v1.context import ApiContext

__all__ = ["ApiContext", "api_routes"]


def api_routes(
    db: Callable[[], Database | None],
    *,
    info_facts: Callable[[], dict[str, Any]],
    started: float | None = None,
) -> list[BaseRoute]:
    """Every `/api/v1` route; `db` returns the open store (None in passthrough mode)."""
    context = ApiContext(db, info_facts, time.time() if started is None else started)
    return [
        *info.routes(context),
        *messages.routes(context),
        *message.routes(context),
        *deliveries.routes(context),
        *swagger.routes(),
    ]
