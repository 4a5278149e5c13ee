"""A relay in hold mode with the real messages of `tests/data/mailpit` received over SMTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mxrelay.app import Relay
from tests.data.mailpit import corpus
from tests.support.dns_server import DnsServer
from tests.support.relay_app import relay_holding

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
