"""The `dns` status condition: set from the resolver's answers (a probe of its own when lookups
are quiet), false while the resolver is silent, and the watch ends when the relay stops."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mxrelay.config import load_settings
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.rcpt.check import RecipientChecker
from mxrelay.runtime.readiness import watch_dns
from tests.support.dns_server import DnsServer
from tests.support.polling import until


@asynccontextmanager
async def watching(servers: str, health: Health) -> AsyncIterator[asyncio.Event]:
    settings = load_settings(
        {"MXRELAY_DNS_SERVERS": servers, "MXRELAY_DNS_QUERY_TIMEOUT": "0.2s"},
        hostname=lambda: "relay.example.net",
    )
    checker = RecipientChecker(settings.dns, settings.policy, Metrics())
    stopping = asyncio.Event()
    watch = asyncio.create_task(
        watch_dns(
            checker,
            health,
            query_timeout=settings.dns.query_timeout.total_seconds(),
            stopping=stopping,
            clock=asyncio.get_running_loop().time,
        )
    )
    try:
        yield stopping
    finally:
        stopping.set()
        await asyncio.wait_for(watch, 5)  # ends of itself once the relay stops
        await checker.aclose()


async def test_a_resolver_that_answers_is_fresh(dns_server: DnsServer) -> None:
    health = Health()
    async with watching(dns_server.address, health):
        await until(lambda: "dns" in health.snapshot())
    condition = health.snapshot()["dns"]
    assert (condition.ok, condition.detail) == (True, "resolver answers")


async def test_a_silent_resolver_is_shown_not_answering() -> None:
    health = Health()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives queries, never answers
        port = silent.getsockname()[1]
        async with watching(f"127.0.0.1:{port}", health):
            await until(lambda: "dns" in health.snapshot())
    condition = health.snapshot()["dns"]
    assert (condition.ok, condition.detail) == (False, "resolver not answering")
    assert health.ready  # status, not readiness
