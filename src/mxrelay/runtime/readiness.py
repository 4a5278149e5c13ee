"""The `dns` status condition: whether the resolver the recipient checks use still answers.

`watch_dns` runs beside the stages until the relay stops: when no answer (of any RCODE) has come
for half of `DNS_FRESHNESS` it sends a probe of its own, and it sets the condition every quarter
of it. The condition is status, not readiness (`health.py`): replicas share the resolver, and a
relay whose resolver is silent still accepts mail for trusted domains and cached verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from mxrelay.health import ConditionName, Health
from mxrelay.model import RdType
from mxrelay.rcpt.answer import Query
from mxrelay.rcpt.check import RecipientChecker

DNS_FRESHNESS = 60.0
"""Seconds after which the resolver must answer a probe again for the `dns` status condition
(shown by /healthz; not readiness, see health.py) to stay true."""


async def watch_dns(
    checker: RecipientChecker,
    health: Health,
    *,
    query_timeout: float,
    stopping: asyncio.Event,
    clock: Callable[[], float],
) -> None:
    """Status condition `dns`: the resolver answered (any RCODE) within DNS_FRESHNESS."""
    while not stopping.is_set():
        last = checker.last_answer_at
        if last is None or clock() - last > DNS_FRESHNESS / 2:
            await checker.resolver.query(Query(".", RdType.MX), query_timeout)
            last = checker.last_answer_at
        fresh = last is not None and clock() - last <= DNS_FRESHNESS
        health.set(
            ConditionName.DNS, fresh, "resolver answers" if fresh else "resolver not answering"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=DNS_FRESHNESS / 4)
