"""`GET /api/v1/mxrelay/audit`: the audit log newest first, paged: who deleted, marked, tagged,
released, retried or sent what through the API, when, from where, on how many.

Query, as mxrelay's other routes read it (`mxrelay_query.py`): `start` and `limit` (at most 500),
and filters `actor`, `action`, `outcome` (each the whole value), `since` and `until` (RFC 3339 or
Unix seconds). The answer is `{"Total", "Start", "Count", "Entries"}`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.audit import AuditFilter, AuditRecord, list_audit
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found, rfc3339, window
from mxrelay.web.api_v1.mxrelay_query import PREFIX, text_filter, time_filter


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


def filters(params: Any) -> AuditFilter:
    """The filters of a query string; ValueError with the reason."""
    return AuditFilter(
        actor=text_filter(params, "actor"),
        action=text_filter(params, "action"),
        outcome=text_filter(params, "outcome"),
        since=time_filter(params, "since"),
        until=time_filter(params, "until"),
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
                "Total": page.total,
                "Start": start,
                "Count": len(page.records),
                "Entries": [entry(record) for record in page.records],
            }
        )


def routes(context: ApiContext) -> list[BaseRoute]:
    return [Route(f"{PREFIX}/audit", Audit(context).list)]
