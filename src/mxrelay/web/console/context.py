"""What every page of the console shares: the store, the relay's health, where it is mounted,
the templates and static files, the address check, and the clock.

Built once by `console_routes` and handed to each page's routes; nothing here is global.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jinja2
from starlette.requests import Request

from mxrelay.health import Health
from mxrelay.model import RecipientVerdict
from mxrelay.store.backend import Database
from mxrelay.web.console.assets import Assets
from mxrelay.web.console.shared import SharedRenders

Explain = Callable[[str], Awaitable[RecipientVerdict]]
"""The recipient check with its evidence, as `mxrelay check` runs it (the relay's checker,
handed in: the web layer never resolves names itself)."""


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    db: Callable[[], Database | None]
    """The open store; None in passthrough mode, which keeps no log."""
    health: Health
    webroot: str
    """The path prefix, `/` or `/prefix/`: every link and asset URL starts with it."""
    templates: jinja2.Environment
    assets: Assets
    explain: Explain | None
    clock: Callable[[], float]
    """Epoch seconds (the store's times are epoch seconds)."""
    poll_seconds: float
    """How often a page re-fetches what can change when the relay's event socket is not there."""
    operator: Callable[[Request], bool]
    """Whether this request's user holds the operator role: only then are actions shown (the API
    decides again when the action comes)."""
    shared: SharedRenders[tuple[str, str]]
    """Renders of the list (its version and HTML) shared by the pages that ask after the same
    event."""
