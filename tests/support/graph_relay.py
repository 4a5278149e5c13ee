"""The whole relay in Graph mode, in-process, delivering to the Microsoft stand-in.

`app.py` does not build the Graph transport yet (its `_open_queue` refuses `graph`), so
`GraphRelay` supplies exactly the wiring it lacks: `GraphTransport.from_settings(settings,
environ, metrics=..., health=...)` handed to the `QueueStage`. Everything else is the real
relay: SMTP listener, RCPT checks against the test DNS server, calendar variants, durable queue,
worker. Once app.py wires the mode, `running_graph_relay` can build a plain `Relay`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiosmtplib

from mxrelay.app import Relay, StartupError
from mxrelay.config import Settings, load_settings
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.stage import QueueStage
from mxrelay.model import DeliveryMode
from mxrelay.store.db import StoreError
from tests.support.dns_server import DnsServer
from tests.support.graph_harness import relay_environ
from tests.support.graph_standin import GraphStandIn
from tests.support.relay_app import BASE_ENV

QUEUED_AS = re.compile(r"queued as (\w+)")


class GraphRelay(Relay):
    """`Relay` with the Graph transport wired the way app.py should wire it."""

    def __init__(self, settings: Settings, environ: Mapping[str, str]) -> None:
        super().__init__(settings)
        self.environ = environ

    async def _open_queue(self, mode: DeliveryMode) -> QueueStage:
        if mode is not DeliveryMode.GRAPH:
            return await super()._open_queue(mode)
        transport = GraphTransport.from_settings(
            self.settings, self.environ, metrics=self.metrics, health=self.health
        )
        stage = QueueStage(
            self.settings, metrics=self.metrics, health=self.health, transport=transport
        )
        try:
            await stage.start()
        except StoreError as exc:
            await stage.aclose(0.0)
            raise StartupError(str(exc)) from None
        return stage


def graph_relay_environ(
    standin: GraphStandIn, dns: DnsServer, directory: Path, **extra: str
) -> dict[str, str]:
    """Graph mode against `standin`, RCPT checks against `dns`, the store in `directory`;
    quick polls and probes so that a test waits tenths of seconds, not minutes."""
    settings = {
        **BASE_ENV,
        "MXRELAY_DNS_SERVERS": dns.address,
        "MXRELAY_DATABASE_URL": f"sqlite:///{directory / 'mxrelay.db'}",
        "MXRELAY_QUEUE_POLL_INTERVAL": "50ms",
        "MXRELAY_DELIVERY_PROBE_INTERVAL": "200ms",
        "MXRELAY_RETRY_INITIAL": "200ms",
        "MXRELAY_RETRY_MAX": "1s",
        "MXRELAY_STORE_COMMIT_WINDOW": "0s",
        "MXRELAY_LOG_LEVEL": "warning",
    }
    settings.update(extra)
    return relay_environ(standin, **settings)


@asynccontextmanager
async def running_graph_relay(environ: Mapping[str, str]) -> AsyncIterator[GraphRelay]:
    settings = load_settings(environ, hostname=lambda: "relay.example.net")
    relay = GraphRelay(settings, environ)
    async with relay:
        yield relay


async def submit(
    relay: Relay, sender: str, recipients: list[str], data: bytes
) -> tuple[str, dict[str, tuple[int, str]]]:
    """One SMTP transaction: the stored message id and the recipients refused at RCPT."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port, timeout=30) as client:
        refused, reply = await client.sendmail(sender, recipients, data)
    match = QUEUED_AS.search(reply)
    assert match, reply
    return match.group(1), {k: (v.code, v.message) for k, v in refused.items()}
