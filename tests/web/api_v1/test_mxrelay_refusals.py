"""mxrelay's refused-recipient log over HTTP: search parameters and domain counts, refusals made
at RCPT by a running relay."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.polling import until
from tests.support.relay_app import running_relay


@pytest.fixture
async def relay(dns_server: DnsServer, tmp_path: Path) -> AsyncIterator[Relay]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
    }
    async with running_relay(env) as running:

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
                for rcpt in ("a@nope.example.net", "b@nope.example.net", "c@gone.example.org"):
                    client.ehlo()
                    client.mail("app@example.org")
                    assert client.rcpt(rcpt)[0] == 550
                    client.rset()

        await asyncio.to_thread(send)

        async def all_logged() -> bool:
            async with client(running) as http:
                answer = await http.get("/api/v1/mxrelay/refusals")
                return len(answer.json()["Refusals"]) == 3

        await until(all_logged, what="the three refusals in the log", within=30)
        yield running


def client(relay: Relay) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}", timeout=30)


async def test_search(relay: Relay) -> None:
    async with client(relay) as http:

        async def recipients(query: str) -> list[str]:
            answer = await http.get(f"/api/v1/mxrelay/refusals?{query}")
            assert answer.status_code == 200, answer.text
            return [r["Recipient"] for r in answer.json()["Refusals"]]

        assert await recipients("") == [
            "c@gone.example.org",
            "b@nope.example.net",
            "a@nope.example.net",
        ]
        assert await recipients("domain=nope.example.net&limit=1") == ["b@nope.example.net"]
        assert await recipients("domain=nope.example.net&start=1") == ["a@nope.example.net"]
        assert await recipients("address=C@GONE") == ["c@gone.example.org"]
        assert await recipients("reason=nxdomain&since=2000-01-01T00:00:00Z") == [
            "c@gone.example.org",
            "b@nope.example.net",
            "a@nope.example.net",
        ]
        assert await recipients("until=2000-01-01T00:00:00Z") == []
        [first] = (await http.get("/api/v1/mxrelay/refusals?limit=1")).json()["Refusals"]
        assert set(first) == {
            "ID", "Time", "Recipient", "Sender", "Client", "Helo", "Username", "Code",
            "EnhancedStatus", "Text", "Reason",
        }  # fmt: skip
        for bad in ("reason=bogus", "since=yesterday", "since=1e400", "limit=x", "address=a%00b"):
            assert (await http.get(f"/api/v1/mxrelay/refusals?{bad}")).status_code == 400


async def test_domain_counts(relay: Relay) -> None:
    async with client(relay) as http:
        counts = (await http.get("/api/v1/mxrelay/refusals/domains")).json()
        assert counts["Total"] == 3
        assert [(d["Domain"], d["Count"]) for d in counts["Domains"]] == [
            ("nope.example.net", 2),
            ("gone.example.org", 1),
        ]
        old = (await http.get("/api/v1/mxrelay/refusals/domains?until=2000-01-01T00:00:00Z")).json()
        assert (old["Total"], old["Domains"]) == (0, [])
