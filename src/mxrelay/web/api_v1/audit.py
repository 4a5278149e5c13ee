"""`GET /api/v1/audit`: mxrelay's own route, the audit log newest first, paged: who deleted, marked,
tagged, released, retried or sent what through the API, when, from where, on how many.

Query: `start`, `limit` (as the message list), and filters `actor`, `action`, `outcome`, `since`
and `until` (Unix time or RFC 3339). Mailpit has no such data; the wrapper keeps Mailpit's
snake_case, the entries its PascalCase.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.audit import AuditFilter, AuditRecord, list_audit
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found, rfc3339, window

TEXT_FILTER_LENGTH = 255
"""Characters of an `actor`, `action` or `outcome` filter; longer matches nothing stored."""


def entry(record: AuditRecord) -> dict[str, Any]:
    e = record.entry
    return {
        "ID": record.id,
        "At": rfc3339(e.at),
        "Actor": e.actor,
        "Client": e.client,
        "Action": e.action,
        "Target": e.target,
        "Count": e.count,
        "Outcome": e.outcome,
    }


def moment(name: str, value: str | None) -> float | None:
    """Unix time or an RFC 3339 timestamp; ValueError naming the parameter otherwise."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        found = float(text) if text.replace(".", "", 1).isdigit() else _iso(text)
    except (ValueError, OverflowError):
        found = math.nan
    if not math.isfinite(found):
        raise ValueError(f"{name} must be Unix time or an RFC 3339 timestamp")
    return found


def _iso(text: str) -> float:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(text)
    return parsed.timestamp()


def filters(params: Any) -> AuditFilter:
    """The filters of a query string; ValueError with the reason."""
    texts = {}
    for name in ("actor", "action", "outcome"):
        value = params.get(name)
        if value is not None and len(value) > TEXT_FILTER_LENGTH:
            raise ValueError(f"{name} is longer than {TEXT_FILTER_LENGTH} characters")
        texts[name] = value or None
    return AuditFilter(
        **texts,
        since=moment("since", params.get("since")),
        until=moment("until", params.get("until")),
    )


class Audit:
    def __init__(self, context: ApiContext) -> None:
        self.context = context

    async def list(self, request: Request) -> Response:
        try:
            database = self.context.store()
            start, limit = window(request.query_params)
            wanted = filters(request.query_params)
        except NoStore:
            return not_found()
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        page = await list_audit(database, start, limit, wanted)
        return JSONResponse(
            {
                "total": page.total,
                "start": start,
                "count": len(page.records),
                "entries": [entry(record) for record in page.records],
            }
        )


def routes(context: ApiContext) -> list[BaseRoute]:
    return [Route("/api/v1/audit", Audit(context).list)]
