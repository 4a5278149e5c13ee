"""The refused recipients: the log with each reply, reason and the check stage that decided it,
the domains refused most over the last day, and, for any address, the relay's check run anew
with its evidence, as `mxrelay check` prints it.

The check is the relay's own recipient checker, handed in (`ConsoleContext.explain`): the same
settings and resolver as at RCPT, the cache bypassed. It is a read (nothing is stored), but it
sends DNS queries, so the address is bounded and one check runs per request.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.model import Reason, RecipientVerdict
from mxrelay.store.console import refusal_page, refusals_by_domain
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.render import is_fragment, page

ADDRESS_LIMIT = 320
"""Characters of an address to check (RFC 5321's 64 + 1 + 255, and some room for brackets)."""
PAGE_SIZE = 50
DAY = 86400.0

STAGES = {
    Reason.SYNTAX.value: "address syntax, before DNS",
    Reason.SPECIAL_USE.value: "special-use name or address, before DNS",
    Reason.POLICY.value: "policy (blocked or disposable domain), before DNS",
    Reason.NXDOMAIN.value: "DNS: the domain does not exist",
    Reason.NODATA.value: "DNS: no MX and no address records",
    Reason.NULL_MX.value: "DNS: the domain publishes a null MX (RFC 7505)",
    Reason.NO_USABLE_MX.value: "DNS: no MX host has a routable address",
    Reason.LOOP.value: "DNS: the MX points back at this relay",
    Reason.TEMPFAIL.value: "DNS: temporary failure (the client retries)",
    Reason.LIMIT.value: "SMTP session limit",
    Reason.UPSTREAM.value: "the upstream server's refusal (passthrough)",
}
"""The stage of the recipient check that gives each reason (recipient-validation rules)."""


def stage_of(reason: str) -> str:
    return STAGES.get(reason, reason)


def _before(token: str) -> tuple[float, int] | None:
    stamp, _, row = token[:64].partition("_")
    try:
        at, row_id = float(stamp), int(row)
    except ValueError:
        return None
    return (at, row_id) if math.isfinite(at) else None


class Refusals:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def show(self, request: Request) -> Response:
        database = self.context.db()
        params = request.query_params
        contains = params.get("q", "").strip()[:ADDRESS_LIMIT]
        address = params.get("check", "").strip()[:ADDRESS_LIMIT]
        verdict: RecipientVerdict | None = None
        if address and self.context.explain is not None:
            verdict = await self.context.explain(address)
        values: dict[str, Any] = {
            "contains": contains,
            "address": address,
            "verdict": verdict,
            "can_check": self.context.explain is not None,
            "stage_of": stage_of,
            "no_store": database is None,
            "refusals": (),
            "domains": (),
            "next_url": None,
        }
        if database is not None:
            before = _before(params.get("before", ""))
            found = await refusal_page(
                database, contains=contains or None, before=before, limit=PAGE_SIZE
            )
            domains = await refusals_by_domain(database, since=self.context.clock() - DAY)
            next_url = None
            if found.next_before is not None:
                at, row_id = found.next_before
                kept = {"q": contains, "before": f"{at!r}_{row_id}"}
                next_url = "?" + urlencode({k: v for k, v in kept.items() if v})
            values.update(refusals=found.refusals, domains=domains, next_url=next_url)
        template = "_refusal_log.html" if is_fragment(request, "refusal-log") else "refusals.html"
        return page(self.context, request, template, section="refusals", **values)


def routes(context: ConsoleContext) -> list[BaseRoute]:
    return [Route("/refusals", Refusals(context).show)]
