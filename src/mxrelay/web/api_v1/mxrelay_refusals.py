"""mxrelay's refused-recipient log: `GET /api/v1/mxrelay/refusals` (search, newest first) and
`GET /api/v1/mxrelay/refusals/domains` (the domains refused most over a span, the last day by
default).

Search parameters, all optional and combined: `address` (the recipient contains it), `domain`
(the recipient's domain is it), `reason` (`nxdomain`, `nullmx`, `policy`, … as the metrics name
them), `since` and `until` (RFC 3339 or Unix seconds), `start` and `limit` (at most 500). A
refusal is the object the `refusal` event carries (`refusal_json`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.model import Reason
from mxrelay.store.refusal_log import (
    COUNT_WINDOW,
    DOMAIN_LIMIT,
    RefusalQuery,
    RefusalView,
    domain_counts,
    search_refusals,
)
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found, rfc3339, window
from mxrelay.web.api_v1.mxrelay_query import PREFIX, parse_time, text_filter, time_filter

DAY = 86_400.0


def refusal_json(view: RefusalView) -> dict[str, Any]:
    return {
        "ID": view.key,
        "Time": rfc3339(view.refused_at),
        "Recipient": view.recipient,
        "Sender": view.mail_from,
        "Client": view.client_address,
        "Helo": view.helo,
        "Username": view.username or "",
        "Code": view.code,
        "EnhancedStatus": view.enhanced,
        "Text": view.text,
        "Reason": view.reason,
    }


def refusal_query(params: Any) -> RefusalQuery:
    reason = text_filter(params, "reason")
    if reason is not None and reason not in {r.value for r in Reason}:
        raise ValueError("reason must be one of " + ", ".join(r.value for r in Reason))
    return RefusalQuery(
        address=text_filter(params, "address"),
        domain=text_filter(params, "domain"),
        reason=reason,
        since=time_filter(params, "since"),
        until=time_filter(params, "until"),
    )


class Refusals:
    def __init__(self, context: ApiContext, *, clock: Callable[[], float] = time.time) -> None:
        self.context = context
        self.clock = clock

    async def search(self, request: Request) -> Response:
        try:
            database = self.context.store()
            query = refusal_query(request.query_params)
            start, limit = window(request.query_params)
        except NoStore:
            return not_found()
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        found = await search_refusals(database, query, limit=limit, start=start)
        return JSONResponse(
            {"Start": start, "Count": len(found), "Refusals": [refusal_json(r) for r in found]}
        )

    async def domains(self, request: Request) -> Response:
        params = request.query_params
        now = self.clock()
        try:
            database = self.context.store()
            until = parse_time(params["until"], "until") if params.get("until") else now
            since = parse_time(params["since"], "since") if params.get("since") else until - DAY
            limit = min(max(int(params.get("limit", "100")), 1), DOMAIN_LIMIT)
        except NoStore:
            return not_found()
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        since = max(since, until - COUNT_WINDOW)
        total, counts = await domain_counts(database, since=since, until=until, limit=limit)
        return JSONResponse(
            {
                "Since": rfc3339(since),
                "Until": rfc3339(until),
                "Total": total,
                "Domains": [
                    {"Domain": c.domain, "Count": c.count, "Last": rfc3339(c.last)} for c in counts
                ],
            }
        )


def routes(context: ApiContext) -> list[BaseRoute]:
    resource = Refusals(context)
    return [
        Route(f"{PREFIX}/refusals", resource.search),
        Route(f"{PREFIX}/refusals/domains", resource.domains),
    ]
