"""The operator's console: server-rendered pages over the message log, the queue, the refusals
and the relay's health, made live by a little script.

One module per page (`messages`, `message`, `queue`, `refusals`, `summary`, `audit`), `render`
and `templates/` for the HTML, `assets` and `static/` for the script, the style sheet and the one
vendored library (htmx). What a message contains reaches the browser through the API's routes
(`/view/{ID}.html`, `/api/v1/message/{ID}/part/...`), never through routes of the console's own.
Pages read the store through its modules (`store.console` holds the console's own small reads).
The routes live under the web root the caller mounts them at; every URL a page writes starts
with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.health import Health
from mxrelay.store.backend import Database
from mxrelay.web.console import audit, message, messages, queue, refusals, summary
from mxrelay.web.console.assets import Assets
from mxrelay.web.console.context import ConsoleContext, Explain
from mxrelay.web.console.render import environment, page
from mxrelay.web.console.shared import SharedRenders

__all__ = ["ConsoleContext", "Explain", "console_routes"]

POLL_SECONDS = 10.0
"""How often a page re-fetches what can change while it has no event socket."""


def console_routes(
    db: Callable[[], Database | None],
    health: Health,
    *,
    webroot: str = "/",
    explain: Explain | None = None,
    clock: Callable[[], float] = time.time,
    poll_seconds: float = POLL_SECONDS,
    operator: Callable[[Request], bool] = lambda request: False,
    told: Callable[[], float | None] = lambda: None,
) -> list[BaseRoute]:
    """Every route of the console, relative to `webroot` (where the caller mounts them).
    `operator` tells whether a request comes from an operator; until the web's authentication
    tells roles apart nobody is one, and no action is offered. `told` is when the event hub
    last broadcast (on `time.monotonic`), None without one: pages asking after the same
    broadcast share one render (`shared.py`)."""
    assets = Assets(webroot)
    context = ConsoleContext(
        db=db,
        health=health,
        webroot=webroot,
        templates=environment(assets, webroot),
        assets=assets,
        explain=explain,
        clock=clock,
        poll_seconds=poll_seconds,
        operator=operator,
        shared=SharedRenders(told),
    )

    async def banner(request: Request) -> Response:
        return page(context, request, "_banner.html")

    return [
        *messages.routes(context),
        *message.routes(context),
        *queue.routes(context),
        *refusals.routes(context),
        *summary.routes(context),
        *audit.routes(context),
        Route("/banner", banner),
        Route("/static/{name}", assets.serve),
    ]
