"""Graph mode's SMTP-time rules: SIZE advertises Graph's limit and larger mail gets 552 5.3.4;
MXRELAY_GRAPH_ALLOWED_SENDERS refuses with 550 5.7.1 a sender or a header From not on the list."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.graph_relay import graph_relay_environ
from tests.support.graph_standin import MAILBOX, GraphStandIn
from tests.support.relay_app import running_relay


@pytest.fixture
async def relay(
    standin: GraphStandIn, dns_server: DnsServer, tmp_path: Path
) -> AsyncIterator[Relay]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    env = graph_relay_environ(
        standin,
        dns_server,
        tmp_path,
        MXRELAY_GRAPH_MAX_MESSAGE_SIZE="64KiB",
        MXRELAY_GRAPH_ALLOWED_SENDERS=f"{MAILBOX},@apps.example.org",
    )
    async with running_relay(env) as running:
        yield running


def message(sender: str, size: int = 0) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <someone@example.net>\r\nSubject: rules\r\n\r\n".encode()
        + b"x" * size
        + b"\r\n"
    )


def session(relay: Relay) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30)
    client.ehlo("client.example")
    return client


async def test_size_is_graphs_limit(relay: Relay) -> None:

    def run() -> tuple[str, tuple[int, bytes]]:
        with session(relay) as client:
            advertised = client.esmtp_features["size"]
            client.mail(MAILBOX)
            client.rcpt("someone@example.net")
            return advertised, client.data(message(MAILBOX, size=100_000))

    advertised, (code, text) = await asyncio.to_thread(run)
    assert advertised == str(64 * 1024)
    assert (code, text[:5]) == (552, b"5.3.4")


@pytest.mark.parametrize(
    ("envelope", "header", "expected"),
    [
        (MAILBOX, MAILBOX, 250),
        ("billing@apps.example.org", "billing@apps.example.org", 250),
        ("intruder@example.org", MAILBOX, 550),  # refused at MAIL
        (MAILBOX, "ceo@example.org", 550),  # refused at the end of DATA: the header From counts
    ],
)
async def test_sender_allow_list(relay: Relay, envelope: str, header: str, expected: int) -> None:

    def run() -> tuple[int, bytes]:
        with session(relay) as client:
            code, text = client.mail(envelope)
            if code != 250:
                return code, text
            assert client.rcpt("someone@example.net")[0] == 250
            return client.data(message(header))

    code, text = await asyncio.to_thread(run)
    assert code == expected
    if expected == 550:
        assert text == b"5.7.1 Sender address rejected: not allowed to send through this relay"
