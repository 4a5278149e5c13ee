"""The application on MXRELAY_HTTP_LISTEN: the operator's page, the `/api/v1` message log, probes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette

from mxrelay.health import Health
from mxrelay.store.db import Database
from mxrelay.web.api_v1 import api_routes
from mxrelay.web.health import health_routes
from mxrelay.web.ui import ui_routes


def web_app(
    db: Callable[[], Database | None], health: Health, *, info: Callable[[], dict[str, Any]]
) -> Starlette:
    return Starlette(routes=[*ui_routes(db), *api_routes(db, info=info), *health_routes(health)])
