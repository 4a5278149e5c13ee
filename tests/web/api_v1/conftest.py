"""Relays in hold mode for the API's tests: one with the real messages of `tests/data/mailpit`
received over SMTP (`mailbox`), one on a fresh SQLite store (`relay`); the API over real HTTP."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mxrelay.app import Relay
from tests.data.mailpit import corpus
from tests.support.dns_server import DnsServer
from tests.support.relay_app import relay_holding, running_relay

SENT = (
    # (corpus, envelope sender, envelope recipients): blind@ is in no header of `related`.
    (
        "related",
        "bounce@example.org",
        ["alex@example.net", "jane@example.net", "cc@example.net", "blind@example.net"],
    ),
    ("forward", "sam@example.org", ["alex@example.net"]),
    ("broken", "", ["alex@example.net"]),
    ("html-only", "news@example.org", ["alex@example.net"]),
)


@dataclass
class Mailbox:
    relay: Relay
    ids: dict[str, str]
    """Message id by corpus name."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.relay.web_port}"

    async def get(self, path: str, **params: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base) as client:
            return await client.get(path, params=params)


@pytest.fixture
async def mailbox(dns_server: DnsServer, tmp_path: Path) -> AsyncIterator[Mailbox]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    sent = [(sender, recipients, corpus(name)) for name, sender, recipients in SENT]
    async with relay_holding(dns_server.address, tmp_path / "log.db", sent) as relay:
        box = Mailbox(relay, {})
        listing = (await box.get("/api/v1/messages")).json()["messages"]
        subjects = {"Your order ✓": "related", "Fwd: two messages": "forward"}
        subjects |= {"Broken MIME": "broken", "HTML only": "html-only"}
        box.ids = {subjects[m["Subject"]]: m["ID"] for m in listing}
        yield box


DOMAINS = ("example.net", "example.org", "example.com")


def hold_env(dns_server: DnsServer, database_url: str) -> dict[str, str]:
    for domain in DOMAINS:
        dns_server.mx(domain, f"10 mx.{domain}")
        dns_server.a(f"mx.{domain}", "192.0.2.10")
    return {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": database_url,
        "MXRELAY_DNS_SERVERS": dns_server.address,
    }


@pytest.fixture
async def relay(dns_server: DnsServer, tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(hold_env(dns_server, f"sqlite:///{tmp_path / 'log.db'}")) as running:
        yield running


async def send(relay: Relay, messages: Sequence[tuple[str, Sequence[str], bytes]]) -> None:
    """Each (sender, recipients, bytes) over one SMTP connection, in order."""

    def run() -> None:
        with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
            for sender, recipients, data in messages:
                client.sendmail(sender, list(recipients), data)

    await asyncio.to_thread(run)


def mail(subject: str, *, extra: str = "", body: str = "Body text.") -> bytes:
    return (
        f"From: Sender <sender@example.org>\r\nTo: Rcpt <rcpt@example.net>\r\n{extra}"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.org>\r\n\r\n"
        f"{body}\r\n"
    ).encode()


async def call(relay: Relay, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as client:
        return await client.request(method, path, **kwargs)
