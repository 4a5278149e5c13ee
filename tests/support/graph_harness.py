"""mxrelay's Graph transport pointed at the stand-in: environment, messages, jobs, transports, and
the `standin` fixture (registered for the whole suite by the root conftest)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from ulid import ULID

from mxrelay.config import load_settings
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.transport import DeliveryJob
from tests.support.graph_standin import MAILBOX, GraphStandIn


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[GraphStandIn]:
    """A Graph stand-in per test, its files (the CA, the app's certificates) in its own folder."""
    with GraphStandIn.running(tmp_path / "standin") as server:
        yield server


class PointsAtGraph(Protocol):
    """A stand-in for Graph, in this process or another: the settings that point mxrelay at it."""

    def environ(self, **extra: str) -> dict[str, str]: ...


def relay_environ(standin: PointsAtGraph, **extra: str) -> dict[str, str]:
    """A Graph-mode relay environment pointed at `standin`; pacing off unless asked for."""
    settings = {
        "MXRELAY_DELIVERY": "graph",
        "MXRELAY_HOSTNAME": "relay.test",
        "MXRELAY_GRAPH_MESSAGES_PER_MINUTE": "0",
        "MXRELAY_GRAPH_CONCURRENCY": "0",
    }
    settings.update(extra)
    return standin.environ(**settings)


def message(
    *,
    sender: str = MAILBOX,
    to: str | None = "alice@example.net",
    cc: str | None = None,
    bcc: str | None = None,
    subject: str = "Hello",
    headers: tuple[str, ...] = (
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        "Message-ID: <m1@app.test>",
    ),
    body: str = "Hi there.",
) -> bytes:
    """A small CRLF message as an application would submit it."""
    lines = [f"From: {sender}"] if sender else []
    for name, value in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if value is not None:
            lines.append(f"{name}: {value}")
    lines += [
        f"Subject: {subject}",
        *headers,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def job(
    data: bytes, recipients: tuple[str, ...] = ("alice@example.net",), **fields: Any
) -> DeliveryJob:
    """A delivery job as the worker would hand it over (a fresh ULID message id)."""
    values: dict[str, Any] = {
        "message_id": str(ULID()),
        "variant": 0,
        "mail_from": MAILBOX,
        "recipients": recipients,
        "data": data,
    }
    values.update(fields)
    return DeliveryJob(**values)


@contextlib.asynccontextmanager
async def graph_transport(
    standin: GraphStandIn, *, environ: dict[str, str] | None = None, **options: Any
) -> AsyncIterator[GraphTransport]:
    """The transport app.py would build, against `standin` (closed on exit)."""
    env = environ if environ is not None else relay_environ(standin)
    transport = GraphTransport.from_settings(load_settings(env), env, **options)
    try:
        yield transport
    finally:
        await transport.aclose()
