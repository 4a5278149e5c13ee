"""`POST /api/v1/send` against a running relay: the message goes through the relay's own pipeline
(recipient checks over the test DNS server, the store, the queue, delivery to a smarthost), or is
refused with Mailpit's error shape and nothing stored."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.passwords import hash_password
from tests.support.relay_app import running_relay
from tests.support.smarthost import Smarthost

REQUEST: dict[str, Any] = {
    "From": {"Email": "app@example.org", "Name": "App"},
    "To": [{"Email": "alex@example.net", "Name": "Alex"}],
    "Cc": [{"Email": "sam@example.net"}],
    "Bcc": ["hidden@example.net"],
    "Subject": "Invoice",
    "Text": "Your invoice.",
    "Attachments": [{"Content": base64.b64encode(b"a,b\r\n").decode(), "Filename": "i.csv"}],
}


def zone(dns_server: DnsServer) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")


@pytest.fixture
async def relay(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> AsyncIterator[Relay]:
    zone(dns_server)
    env = {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_DELIVERY_PROCESS": "false",
        "MXRELAY_UPSTREAM": smarthost.url,
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "MXRELAY_MAX_MESSAGE_SIZE": "64KiB",
    }
    async with running_relay(env) as running:
        yield running


def client(relay: Relay) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}", timeout=30)


async def test_a_sent_message_is_stored_and_delivered(relay: Relay, smarthost: Smarthost) -> None:
    async with client(relay) as http:
        answer = await http.post("/api/v1/send", json=REQUEST)
        assert answer.status_code == 200, answer.text
        [key] = answer.json()
        assert key == "ID"
        ident = answer.json()["ID"]
        [delivered] = await smarthost.wait_for(1)
        assert delivered.mail_from == "app@example.org"
        assert sorted(delivered.recipients) == [
            "alex@example.net",
            "hidden@example.net",
            "sam@example.net",
        ]
        assert b"hidden@example.net" not in delivered.data  # a Bcc is the envelope's only
        assert b"Received: from http-api (unknown [127.0.0.1])" in delivered.data
        assert f"id {ident}".encode() in delivered.data
        deliveries = (await http.get(f"/api/v1/message/{ident}/deliveries")).json()
        assert sorted(r["Address"] for r in deliveries["Recipients"]) == [
            "alex@example.net",
            "hidden@example.net",
            "sam@example.net",
        ]
        listed = (await http.get("/api/v1/messages")).json()
        assert [m["ID"] for m in listed["messages"]] == [ident]
        assert listed["messages"][0]["Subject"] == "Invoice"
        [entry] = (await http.get("/api/v1/mxrelay/audit")).json()["Entries"]
        assert (entry["Action"], entry["Target"], entry["Count"], entry["Outcome"]) == (
            "send",
            ident,
            3,
            "ok",
        )


async def test_a_refused_recipient_refuses_the_message(relay: Relay, smarthost: Smarthost) -> None:
    async with client(relay) as http:
        request = {**REQUEST, "Bcc": ["x@nope.example.net"]}
        answer = await http.post("/api/v1/send", json=request)
        assert answer.status_code == 400
        error = answer.json()["Error"]
        assert error.startswith("550 5.1.2 <x@nope.example.net>: Recipient address rejected")
        assert (await http.get("/api/v1/messages")).json()["total"] == 0
        refusals = (await http.get("/api/v1/mxrelay/refusals")).json()["Refusals"]
        assert [(r["Recipient"], r["Helo"]) for r in refusals] == [
            ("x@nope.example.net", "http-api")
        ]
    assert smarthost.received == []


async def test_requests_that_cannot_be_read_or_built(relay: Relay) -> None:
    async with client(relay) as http:
        empty = await http.post("/api/v1/send", content=b"")
        assert (empty.status_code, empty.json()) == (400, {"Error": "EOF"})
        # Go's words where Mailpit's decoder stops: the syntax, then a field's path and type.
        unreadable = {
            b'{"Subject": "Hi",}': "invalid character '}' looking for beginning of object key string",
            b'{"From": {"Email": "app@example.org"}': "unexpected EOF",
            b'{"Text": NaN}': "invalid character 'N' looking for beginning of value",
            b'{"From": {"Email": 5}}': (
                "json: cannot unmarshal number into Go struct field .From.Email of type string"
            ),
            b'{"To": [{"Email": "a@example.net", "Name": ["A"]}]}': (
                "json: cannot unmarshal array into Go struct field .To.Name of type string"
            ),
        }
        for body, error in unreadable.items():
            answer = await http.post("/api/v1/send", content=body)
            assert (answer.status_code, answer.json()) == (400, {"Error": error})
        no_subject = await http.post("/api/v1/send", json={**REQUEST, "Subject": ""})
        assert no_subject.json() == {"Error": "error building message: subject not set"}
        huge = await http.post("/api/v1/send", content=b" " * (2 * 1024 * 1024))
        assert huge.status_code == 413
        over = {**REQUEST, "Text": "x" * 70_000}
        too_big = await http.post("/api/v1/send", json=over)
        assert (too_big.status_code, too_big.json()) == (
            400,
            {"Error": "552 5.3.4 Message size exceeds fixed limit"},
        )
        assert (await http.get("/api/v1/messages")).json()["total"] == 0


async def test_passthrough_relays_a_sent_message_upstream(
    dns_server: DnsServer, smarthost: Smarthost
) -> None:
    zone(dns_server)
    env = {
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(smarthost.port),
    }
    async with running_relay(env) as relay, client(relay) as http:
        answer = await http.post("/api/v1/send", json=REQUEST)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["ID"]) == 12  # the transaction's queue id: nothing is stored
        [relayed] = smarthost.received
        assert sorted(relayed.recipients) == [
            "alex@example.net",
            "hidden@example.net",
            "sam@example.net",
        ]
        smarthost.script.rcpt["sam@example.net"] = "550 5.1.1 No such user"
        refused = await http.post("/api/v1/send", json=REQUEST)
        assert (refused.status_code, refused.json()) == (400, {"Error": "550 5.1.1 No such user"})
    assert len(smarthost.received) == 1


async def test_the_authenticated_user_is_the_messages_username(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> None:
    """As Mailpit records its send-API user: the user the web's login let in."""
    zone(dns_server)
    users = tmp_path / "ui-users"
    users.write_text(f"operator:{hash_password('secret')}\n", encoding="utf-8")
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "MXRELAY_UI_AUTH_FILE": str(users),
        "MXRELAY_UI_OPERATORS": "operator",
    }
    async with running_relay(env) as relay, client(relay) as http:
        http.auth = ("operator", "secret")
        answer = await http.post("/api/v1/send", json=REQUEST)
        assert answer.status_code == 200, answer.text
        message = (await http.get(f"/api/v1/message/{answer.json()['ID']}")).json()
        assert message["Username"] == "operator"
