"""The assembled relay: readiness is the listener and the store, every other condition is shown by
/healthz, metrics are exposed before any traffic."""

from __future__ import annotations

import socket

import httpx

from tests.support.dns_server import DnsServer
from tests.support.polling import until
from tests.support.processes import free_port
from tests.support.relay_app import running_relay


async def wait_for_status(url: str, status: int) -> httpx.Response:
    """The first answer of `url` with `status`."""
    async with httpx.AsyncClient() as client:

        async def answered() -> httpx.Response | None:
            response = await client.get(url)
            return response if response.status_code == status else None

        return await until(answered, what=f"{url} answering {status}")


async def test_ready_when_listening_and_the_resolver_answers(dns_server: DnsServer) -> None:
    env = {
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(free_port()),
    }
    async with running_relay(env) as relay:
        base = f"http://127.0.0.1:{relay.metrics_port}"
        response = await wait_for_status(f"{base}/readyz", 200)
        assert response.json() == {"status": "ready"}
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{base}/healthz")
            metrics = (await client.get(f"{base}/metrics")).text
    assert health.status_code == 200
    assert 'mxrelay_build_info{version="0.1.0"} 1.0' in metrics
    assert 'mxrelay_smtp_recipients_total{reason="nxdomain",verdict="rejected"} 0.0' in metrics
    assert (
        "mxrelay_dns_lookup_duration_seconds_bucket" in metrics
        or "mxrelay_dns_lookups_total" in metrics
    )


async def wait_for_condition(url: str, name: str, ok: bool) -> httpx.Response:
    """The first /healthz answer in which condition `name` is `ok`."""
    async with httpx.AsyncClient() as client:

        async def reported() -> httpx.Response | None:
            response = await client.get(url)
            condition = response.json()["conditions"].get(name)
            return response if condition is not None and condition["ok"] is ok else None

        return await until(reported, what=f"{name} ok={ok} at {url}")


async def test_ready_while_the_resolver_is_silent() -> None:
    """A dead resolver is shown, not a reason to leave the Service: replicas share it, and the
    relay still accepts mail for trusted domains and cached verdicts (451 for the rest)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives queries, never answers
        port = silent.getsockname()[1]
        env = {
            "MXRELAY_DNS_SERVERS": f"127.0.0.1:{port}",
            "MXRELAY_DNS_QUERY_TIMEOUT": "0.2s",
            "UPSTREAM_HOST": "127.0.0.1",
            "UPSTREAM_PORT": str(free_port()),
        }
        async with running_relay(env) as relay:
            base = f"http://127.0.0.1:{relay.metrics_port}"
            health = await wait_for_condition(f"{base}/healthz", "dns", ok=False)
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"{base}/readyz")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["conditions"]["dns"] == {
        "ok": False,
        "detail": "resolver not answering",
        "readiness": False,
    }
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "degraded": {"dns": "resolver not answering"}}
