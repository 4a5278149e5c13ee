"""mxrelay's queue routes against a running relay in hold mode: the summary, and retry, hold,
resume and cancel on one message's entries, each announced as a `delivery` event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from mxrelay.app import Relay
from mxrelay.health import ConditionName
from mxrelay.model import QueueState
from mxrelay.web.api_v1.mxrelay_queue import ACTIONS
from tests.support.dns_server import DnsServer
from tests.support.relay_app import entry_in_state, running_relay, send_mail

MESSAGE = b"From: app@example.org\r\nTo: alex@example.net\r\nSubject: Held\r\n\r\nHi.\r\n"


@pytest.fixture
async def relay(dns_server: DnsServer, tmp_path: Path) -> AsyncIterator[Relay]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "MXRELAY_HTTP_EVENTS_POLL_INTERVAL": "100ms",
    }
    async with running_relay(env) as running:
        await send_mail(running, "app@example.org", ["alex@example.net"], MESSAGE)
        yield running


def client(relay: Relay) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}", timeout=30)


async def test_the_summary(relay: Relay) -> None:
    relay.health.set(ConditionName.DELIVERY, False, "configuration fault: no mailbox")
    async with client(relay) as http:
        summary = (await http.get("/api/v1/mxrelay/queue")).json()
    assert summary["States"] == {
        "queued": 0,
        "active": 0,
        "deferred": 0,
        "held": 1,
        "dead": 0,
        "delivered": 0,
    }
    assert summary["Lanes"] == []  # SQLite: Graph paces in the relay's memory
    assert {"Condition": "delivery", "Detail": "configuration fault: no mailbox"} in summary[
        "Faults"
    ]


async def test_actions_on_a_message(relay: Relay) -> None:
    async with client(relay) as http, connect(f"ws://127.0.0.1:{relay.web_port}/api/events") as ws:
        ident = (await http.get("/api/v1/messages")).json()["messages"][0]["ID"]

        async def act(action: str) -> dict[str, object]:
            answer = await http.post(f"/api/v1/mxrelay/message/{ident}/{action}")
            assert answer.status_code == 200, answer.text
            result: dict[str, object] = answer.json()
            return result

        assert await act("resume") == {"ID": ident, "Action": "resume", "Changed": 1}
        await entry_in_state(relay, ident, QueueState.QUEUED)
        async with asyncio.timeout(10):
            while (frame := json.loads(await ws.recv()))["Type"] != "delivery":
                pass
        assert frame["Data"] == {"ID": ident, "Action": "resume", "Changed": 1}
        assert (await act("hold"))["Changed"] == 1
        await entry_in_state(relay, ident, QueueState.HELD)
        assert (await act("hold"))["Changed"] == 0  # already held
        assert (await act("cancel"))["Changed"] == 1
        await entry_in_state(relay, ident, QueueState.DEAD)
        assert (await act("retry"))["Changed"] == 1
        await entry_in_state(relay, ident, QueueState.QUEUED)
        unknown = await http.post("/api/v1/mxrelay/message/01NOPE/retry")
        assert unknown.status_code == 404
        assert (await http.post(f"/api/v1/mxrelay/message/{ident}/explode")).status_code == 404


async def test_actions_on_a_selection(relay: Relay) -> None:
    await send_mail(relay, "app@example.org", ["sam@example.net"], MESSAGE)
    async with client(relay) as http:
        ids = [m["ID"] for m in (await http.get("/api/v1/messages")).json()["messages"]]
        assert len(ids) == 2
        answer = await http.post("/api/v1/mxrelay/messages/resume", json={"IDs": ids})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["Action"], answer.json()["Changed"]) == ("resume", 2)
        assert sorted(m["ID"] for m in answer.json()["Messages"]) == sorted(ids)
        for ident in ids:
            await entry_in_state(relay, ident, QueueState.QUEUED)
        again = await http.post("/api/v1/mxrelay/messages/hold", json={"IDs": [ids[0]]})
        assert again.json()["Changed"] == 1
        await entry_in_state(relay, ids[0], QueueState.HELD)
        # Never "all": an empty, missing or broken selection is refused.
        selections: list[dict[str, list[str]]] = [{"IDs": []}, {}]
        for body in selections:
            refused = await http.post("/api/v1/mxrelay/messages/cancel", json=body)
            assert (refused.status_code, refused.text) == (400, "no IDs given")
        broken = await http.post("/api/v1/mxrelay/messages/cancel", content=b"{")
        assert (broken.status_code, broken.text) == (400, "unexpected EOF")
        wrong = await http.post("/api/v1/mxrelay/messages/cancel", json={"IDs": "x"})
        assert (wrong.status_code, wrong.text) == (
            400,
            "json: cannot unmarshal string into Go struct field .IDs of type []string",
        )
        too_many = {"IDs": [f"01ID{n:022d}" for n in range(1001)]}
        refused = await http.post("/api/v1/mxrelay/messages/cancel", json=too_many)
        assert (refused.status_code, refused.text) == (400, "at most 1000 IDs at once")
        assert (
            await http.post("/api/v1/mxrelay/messages/explode", json={"IDs": ids})
        ).status_code == 404
        entries = (await http.get("/api/v1/mxrelay/audit")).json()["Entries"]
        assert [(e["Action"], e["Count"]) for e in entries if e["Action"] in ACTIONS] == [
            ("hold", 1),
            ("resume", 2),
        ]


@pytest.mark.postgres
async def test_an_id_with_a_nul_changes_nothing_on_postgresql(
    dns_server: DnsServer, postgres_url: str
) -> None:
    """PostgreSQL refuses a NUL even as a parameter: an id with one is no message's, and is not
    looked up (it was a 500)."""
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": postgres_url,
        "MXRELAY_DNS_SERVERS": dns_server.address,
    }
    async with running_relay(env) as relay, client(relay) as http:
        await send_mail(relay, "app@example.org", ["alex@example.net"], MESSAGE)
        answer = await http.post("/api/v1/mxrelay/messages/resume", json={"IDs": ["a\x00b"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["Changed"] == 0
        for path in ("/api/v1/mxrelay/message/a%00b/resume", "/api/v1/message/a%00b/release"):
            assert (await http.post(path, json={"To": ["x@example.net"]})).status_code == 404
        for path in ("/api/v1/message/a%00b", "/api/v1/message/%00/raw", "/message/%00"):
            assert (await http.get(path)).status_code == 404
