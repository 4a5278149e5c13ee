"""The audit log as a page: who did what through the API (the console's actions included), when,
from where, on what and on how many, and how it ended; newest first, paged, and filtered by who,
what or how it ended.

Read from the store (`store.audit.list_audit`), as the other pages read theirs, so the page is
the same whatever path the API serves the log under. It is a read, so it is shown to whoever
may read the console (`roles.required_role`: a viewer or an operator), as the log's API is. A
filter matches a whole value; each actor and action in the table links to its own filter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.audit import ACTION_LENGTH, ACTOR_LENGTH, AuditFilter, list_audit
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.render import is_fragment, page

PAGE_SIZE = 50
START_LIMIT = 1_000_000
"""Entries a page may skip (the pages are by offset: the log is kept for a bounded time)."""
OUTCOMES = ("ok", "denied", "refused", "error")
"""What `web/audit.py` records as an action's outcome."""
TARGET_SHOWN = 200
"""Characters of a target written in the table (the rest is in its title)."""


def _start(text: str) -> int:
    return min(int(text), START_LIMIT) if text.isdigit() and len(text) <= 8 else 0


class AuditPage:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def show(self, request: Request) -> Response:
        database = self.context.db()
        params = request.query_params
        actor = params.get("actor", "").strip()[:ACTOR_LENGTH]
        action = params.get("action", "").strip()[:ACTION_LENGTH]
        outcome = params.get("outcome", "")
        outcome = outcome if outcome in OUTCOMES else ""
        start = _start(params.get("start", ""))
        kept = {"actor": actor, "action": action, "outcome": outcome}

        def url(**changed: str) -> str:
            query = {k: v for k, v in {**kept, **changed}.items() if v}
            return "audit" + ("?" + urlencode(query) if query else "")

        values: dict[str, Any] = {
            **kept,
            "outcomes": OUTCOMES,
            "target_shown": TARGET_SHOWN,
            "no_store": database is None,
            "records": (),
            "total": 0,
            "start": start,
            "page_url": url(start=str(start) if start else ""),
            "filter_url": url,
            "newer_url": None,
            "older_url": None,
        }
        if database is not None:
            found = await list_audit(
                database,
                start,
                PAGE_SIZE,
                AuditFilter(actor=actor or None, action=action or None, outcome=outcome or None),
            )
            if start:
                newer = max(start - PAGE_SIZE, 0)
                values["newer_url"] = url(start=str(newer) if newer else "")
            if start + PAGE_SIZE < min(found.total, START_LIMIT):
                values["older_url"] = url(start=str(start + PAGE_SIZE))
            values.update(records=found.records, total=found.total)
        template = "_audit_log.html" if is_fragment(request, "audit-log") else "audit.html"
        return page(self.context, request, template, section="audit", **values)


def routes(context: ConsoleContext) -> list[BaseRoute]:
    return [Route("/audit", AuditPage(context).show)]
