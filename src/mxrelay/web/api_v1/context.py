"""What every `/api/v1` resource shares: the store, the paging window, the common answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import PlainTextResponse

from mxrelay.store.backend import Database
from mxrelay.web.api_v1.changes import Change, announce_change, ignore_change

MAX_LIMIT = 500
MAX_START = 2**63 - 1
"""The largest offset both databases take (a signed 64-bit integer): past it, 400, not a 500."""


def not_found() -> PlainTextResponse:
    """Mailpit's answer for an unknown route or message (Go's `http.NotFound`)."""
    return PlainTextResponse("404 page not found", status_code=404)


class NoStore(LookupError):
    """The relay keeps no store (passthrough mode): the message log is empty and not found."""


@dataclass(frozen=True, slots=True)
class ApiContext:
    db: Callable[[], Database | None]
    """The open store, None in passthrough mode (opened after the web server starts)."""
    info: Callable[[], dict[str, Any]]
    """The relay's facts for `/info` (mode, database, SMTP counts)."""
    started: float
    """When the relay started (epoch seconds), for the uptime."""
    on_change: Callable[[Change], None] = ignore_change
    """Told of each change a route made to the message log, after it is committed
    (`changes.py`): where the live events hook in."""
    clock: Callable[[], float] = time.time

    async def report(self, change: Change) -> None:
        """Tell `on_change`, and announce the change to every replica's live clients (the store
        is their bus: `store/changes.py`)."""
        self.on_change(change)
        await announce_change(self.db(), change)

    def store(self) -> Database:
        database = self.db()
        if database is None:
            raise NoStore
        return database


def window(params: Any) -> tuple[int, int]:
    """`start` and `limit` from the query string, bounded; ValueError with the reason."""
    try:
        start_at = max(0, int(params.get("start", "0")))
        limit = min(MAX_LIMIT, max(1, int(params.get("limit", "50"))))
    except ValueError:
        raise ValueError("start and limit must be integers") from None
    if start_at > MAX_START:
        raise ValueError(f"start must be at most {MAX_START}")
    return start_at, limit


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
