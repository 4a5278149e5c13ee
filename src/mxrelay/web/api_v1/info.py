"""`GET /api/v1/info`: Mailpit's AppInformation, with exactly its keys and truthful values.

`Version` is `v` and the relay's version; `LatestVersion` is empty (the relay never calls out to
learn of a newer release); `Database` is the store's URL without its password; `DatabaseSize`,
`Messages`, `Unread` and `Tags` come from the store; `RuntimeStats` counts since the relay started.
Without a store (passthrough mode) the counts are 0.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay import __version__
from mxrelay.store.mailbox import MailboxStats, mailbox_stats
from mxrelay.web.api_v1.context import ApiContext

STATM = Path("/proc/self/statm")
PAGE_SIZE = resource.getpagesize()


def memory_in_use() -> int:
    """Bytes of memory the process holds now (its resident set; where /proc is missing, the
    largest it has held)."""
    try:
        return int(STATM.read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def app_information(
    stats: MailboxStats, facts: dict[str, Any], uptime: float, memory: int
) -> dict[str, Any]:
    runtime = facts.get("RuntimeStats", {})
    return {
        "Version": f"v{__version__}",
        "LatestVersion": "",
        "Database": facts.get("Database", ""),
        "DatabaseSize": stats.size,
        "Messages": stats.messages,
        "Unread": stats.unread,
        "Tags": stats.tags,
        "RuntimeStats": {
            "Uptime": round(uptime, 3),
            "Memory": memory,
            "MessagesDeleted": runtime.get("MessagesDeleted", 0),
            "SMTPAccepted": runtime.get("SMTPAccepted", 0),
            "SMTPAcceptedSize": runtime.get("SMTPAcceptedSize", 0),
            "SMTPRejected": runtime.get("SMTPRejected", 0),
            "SMTPIgnored": runtime.get("SMTPIgnored", 0),
        },
    }


class Info:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def get(self, request: Request) -> Response:
        database = self.context.db()
        facts = self.context.info()
        if database is None:  # passthrough mode: no store is open, whatever the URL says
            stats, facts = MailboxStats(0, 0, {}, 0), {**facts, "Database": ""}
        else:
            stats = await mailbox_stats(database)
        uptime = time.time() - self.context.started
        body = app_information(stats, facts, uptime, memory_in_use())
        return JSONResponse(body)


def routes(context: ApiContext) -> list[BaseRoute]:
    return [Route("/api/v1/info", Info(context).get, methods=["GET"])]
