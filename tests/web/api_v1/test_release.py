"""`POST /api/v1/message/{ID}/release` against a running relay: a copy for other recipients goes
through the pipeline (recipient checks, store, queue, delivery to a smarthost) as a new message
linked to the original; a refused address sends nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.relay_app import running_relay, send_mail
from tests.support.smarthost import Smarthost

ORIGINAL = (
    b"From: Billing <billing@example.org>\r\nTo: Alex <alex@example.net>\r\n"
    b"Bcc: auditor@example.net\r\nSubject: Invoice 42\r\nMessage-ID: <inv42@example.org>\r\n"
    b"\r\nYour invoice.\r\n"
)


@pytest.fixture
async def relay(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> AsyncIterator[Relay]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    env = {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_DELIVERY_PROCESS": "false",
        "MXRELAY_UPSTREAM": smarthost.url,
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
    }
    async with running_relay(env) as running:
        await send_mail(running, "bounce@example.org", ["alex@example.net"], ORIGINAL)
        await smarthost.wait_for(1)
        yield running


def client(relay: Relay) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}", timeout=30)


async def test_a_release_is_a_new_message_linked_to_the_original(
    relay: Relay, smarthost: Smarthost
) -> None:
    async with client(relay) as http:
        original = (await http.get("/api/v1/messages")).json()["messages"][0]["ID"]
        answer = await http.post(
            f"/api/v1/message/{original}/release", json={"to": ["Sam <sam@example.net>"]}
        )
        assert (answer.status_code, answer.text) == (200, "ok")
        _, copy = await smarthost.wait_for(2)
        assert copy.mail_from == "bounce@example.org"  # the original envelope's sender
        assert copy.recipients == ("sam@example.net",)
        assert b"auditor@example.net" not in copy.data  # the original's Bcc stays hidden
        assert copy.data.endswith(ORIGINAL.replace(b"Bcc: auditor@example.net\r\n", b""))
        newest = (await http.get("/api/v1/messages")).json()["messages"]
        assert len(newest) == 2
        released = newest[0]["ID"]
        assert released != original
        deliveries = (await http.get(f"/api/v1/message/{released}/deliveries")).json()
        assert deliveries["ReleasedFrom"] == original
        assert [r["Address"] for r in deliveries["Recipients"]] == ["sam@example.net"]
        assert (await http.get(f"/api/v1/message/{original}/deliveries")).json()[
            "ReleasedFrom"
        ] is None
        latest = await http.post("/api/v1/message/latest/release", json={"To": ["x@example.net"]})
        assert latest.text == "ok"
        assert (await smarthost.wait_for(3))[-1].recipients == ("x@example.net",)


async def test_a_refused_address_sends_nothing(relay: Relay, smarthost: Smarthost) -> None:
    async with client(relay) as http:
        original = (await http.get("/api/v1/messages")).json()["messages"][0]["ID"]
        answer = await http.post(
            f"/api/v1/message/{original}/release",
            json={"To": ["sam@example.net", "x@nope.example.net"]},
        )
        assert answer.status_code == 400
        assert answer.text.startswith(
            "SMTP error: 550 5.1.2 <x@nope.example.net>: Recipient address rejected"
        )
        assert (await http.get("/api/v1/messages")).json()["total"] == 1
    assert len(smarthost.received) == 1


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"To": []}, 400, "No valid addresses found"),
        ({}, 400, "No valid addresses found"),
        ({"To": ["not an address"]}, 400, "Invalid email address: not an address"),
        (
            {"To": "sam@example.net"},
            400,
            "json: cannot unmarshal string into Go struct field .To of type []string",
        ),
        (b'{"To": ["sam@example.net"]', 400, "unexpected EOF"),
        (b'{"To": [sam@example.net]}', 400, "invalid character 's' looking for beginning of value"),
    ],
)
async def test_mailpits_answers(relay: Relay, body: object, status: int, text: str) -> None:
    async with client(relay) as http:
        original = (await http.get("/api/v1/messages")).json()["messages"][0]["ID"]
        path = f"/api/v1/message/{original}/release"
        if isinstance(body, bytes):
            answer = await http.post(path, content=body)
        else:
            answer = await http.post(path, json=body)
        assert (answer.status_code, answer.text) == (status, text)
        unknown = await http.post("/api/v1/message/01NOPE/release", json={"To": ["a@example.net"]})
        assert (unknown.status_code, unknown.text) == (404, "404 page not found")
