"""/readyz means "can accept and store"; delivery-side faults show in /healthz and /metrics only.

Through real HTTP on the metrics port of the whole relay in Graph mode, with the Microsoft
stand-in refusing every token (a wrong client secret): the relay still answers 250, stays ready,
and shows the fault in /metrics, /healthz and the /readyz body.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from mxrelay.model import QueueState
from tests.support.dns_server import DnsServer
from tests.support.graph_relay import graph_relay_environ, submit
from tests.support.graph_standin import MAILBOX, GraphStandIn
from tests.support.relay_app import entry_in_state, running_relay

WRONG_SECRET = "Not-The~Secret.42"


async def test_a_token_fault_keeps_the_relay_ready_and_shows_everywhere_else(
    standin: GraphStandIn, dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    environ = graph_relay_environ(
        standin, dns_server, tmp_path, MXRELAY_GRAPH_CLIENT_SECRET=WRONG_SECRET
    )
    data = b"From: " + MAILBOX.encode() + b"\r\nTo: alice@example.net\r\nSubject: x\r\n\r\nbody\r\n"
    async with running_relay(environ) as relay, httpx.AsyncClient() as client:
        base = f"http://127.0.0.1:{relay.metrics_port}"
        first, _ = await submit(relay, MAILBOX, ["alice@example.net"], data)  # 250, or it raises
        # The token was refused: the mail waits for the fix.
        await entry_in_state(relay, first, QueueState.HELD)
        second, _ = await submit(relay, MAILBOX, ["alice@example.net"], data)  # still 250
        ready = await client.get(f"{base}/readyz")
        health = await client.get(f"{base}/healthz")
        metrics = (await client.get(f"{base}/metrics")).text
    assert first != second
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert "AADSTS7000215" in ready.json()["degraded"]["graph"]
    assert health.status_code == 200
    conditions = health.json()["conditions"]
    assert health.json()["ready"] is True
    assert conditions["graph"]["ok"] is False
    assert conditions["graph"]["readiness"] is False
    assert "the client secret is wrong" in conditions["graph"]["detail"]
    assert conditions["delivery"]["ok"] is False
    assert conditions["smtp"] == {"ok": True, "detail": "listening", "readiness": True}
    assert conditions["store"]["ok"] is True
    assert 'mxrelay_graph_configuration_fault{fault="credentials"} 1.0' in metrics
    assert 'mxrelay_graph_token_failures_total{kind="configuration"}' in metrics
    for body in (ready.text, health.text, metrics):
        assert WRONG_SECRET not in body
    assert standin.send_requests() == []
