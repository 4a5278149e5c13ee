"""Events from every process reach every client: two relays on one PostgreSQL (a message taken
in by one is announced to the other's clients, woken by the store's notification, not a timer),
and a delivery made by the delivery process (a child process writing the attempt)."""

from __future__ import annotations

import asyncio
import json
import smtplib
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.relay_app import running_relay
from tests.support.smarthost import Smarthost

MESSAGE = b"From: app@example.org\r\nTo: alex@example.net\r\nSubject: Hello\r\n\r\nHi.\r\n"


async def frames_of(socket: ClientConnection, *kinds: str, within: float) -> dict[str, Any]:
    """The data of the first frame of each type in `kinds`, in whatever order they come."""
    found: dict[str, Any] = {}
    async with asyncio.timeout(within):
        while set(kinds) - set(found):
            frame = json.loads(await socket.recv())
            found.setdefault(frame["Type"], frame["Data"])
    return found


async def smtp(relay: Relay, recipients: list[str]) -> None:
    def send() -> None:
        with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
            client.sendmail("app@example.org", recipients, MESSAGE)

    await asyncio.to_thread(send)


def zone(dns_server: DnsServer) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")


@pytest.mark.postgres
async def test_an_event_on_one_replica_reaches_the_clients_of_another(
    dns_server: DnsServer, postgres_url: str
) -> None:
    zone(dns_server)
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": postgres_url,
        "MXRELAY_DNS_SERVERS": dns_server.address,
        # The fallback poll is 20 × this: only a notification can bring the events in time.
        "MXRELAY_HTTP_EVENTS_POLL_INTERVAL": "30s",
    }
    async with (
        running_relay(env) as first,
        running_relay(env) as second,
        connect(f"ws://127.0.0.1:{second.web_port}/api/events") as socket,
    ):
        await smtp(first, ["alex@example.net", "x@nope.example.net"])
        found = await frames_of(socket, "new", "refusal", within=10)
        assert found["new"]["Subject"] == "Hello"
        assert found["refusal"]["Recipient"] == "x@nope.example.net"


@pytest.mark.slow
async def test_a_delivery_by_the_delivery_process_reaches_the_client(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> None:
    zone(dns_server)
    env = {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_DELIVERY_PROCESS": "true",
        "MXRELAY_UPSTREAM": smarthost.url,
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "MXRELAY_HTTP_EVENTS_POLL_INTERVAL": "100ms",
    }
    async with running_relay(env) as relay:
        assert relay.queue_stage is not None
        assert relay.queue_stage.delivery is not None  # delivering from its child process
        async with connect(f"ws://127.0.0.1:{relay.web_port}/api/events") as socket:
            await smtp(relay, ["alex@example.net"])
            delivery = (await frames_of(socket, "delivery", within=20))["delivery"]
            assert delivery["Outcome"] == "delivered"
            assert [r["Address"] for r in delivery["Recipients"]] == ["alex@example.net"]
