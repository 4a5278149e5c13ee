"""The web UI and API against DNS rebinding and framing, over real HTTP: only the relay's own
names (and IP addresses) as `Host`, and the security headers on every response."""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mxrelay.app import Relay
from tests.support.relay_app import running_relay

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
        "MXRELAY_HTTP_ALLOWED_HOSTS": "mail-relay.example.com,*.corp.example,Bücher.example",
    }
    async with running_relay(env) as running:

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
                client.sendmail(
                    "a@example.org", ["b@example.net"], b"Subject: <b>hi</b>\r\n\r\n<script>\r\n"
                )

        await asyncio.to_thread(send)
        yield running


async def get(port: int, path: str, host: str | None) -> httpx.Response:
    headers = {"Host": host} if host is not None else {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8025",
        "LOCALHOST.",
        "ui.localhost:8025",
        "127.0.0.1:8025",
        "10.1.2.3",
        "[::1]:8025",
        "[fe80::1]",
        "relay.example.net",  # MXRELAY_HOSTNAME
        "relay.example.net.:8025",
        "mail-relay.example.com",  # MXRELAY_HTTP_ALLOWED_HOSTS
        "a.corp.example",
        "a.b.corp.example:443",
        "xn--bcher-kva.example",
    ],
)
async def test_the_relays_names_and_addresses_are_answered(relay: Relay, host: str) -> None:
    response = await get(relay.web_port, "/api/v1/messages", host)
    assert response.status_code == 200, host
    assert response.json()["total"] == 1


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:8025",
        "relay.example.net.attacker.example",
        "corp.example",  # *.corp.example names the subdomains only
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "2130706433",
        "",
        "localhost:port",
        "[::1",
        "a b",
        "user@localhost",
    ],
)
async def test_any_other_host_gets_400_on_every_path(relay: Relay, host: str) -> None:
    for path in ("/", "/api/v1/messages", "/api/v1/message/latest/raw", "/api/v1/info"):
        response = await get(relay.web_port, path, host)
        assert response.status_code == 400, (host, path)
        assert response.text == "Invalid host header"
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value


async def test_a_request_without_host_is_refused(relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.web_port)
    writer.write(b"GET /api/v1/messages HTTP/1.0\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_the_metrics_port_answers_any_host(relay: Relay) -> None:
    """Probes and scrapes come by pod address and service names; the metrics port holds no
    message data, so it has no host check (its NetworkPolicy limits who may reach it)."""
    for path in ("/healthz", "/readyz", "/metrics"):
        response = await get(relay.metrics_port, path, "attacker.example")
        assert response.status_code == 200, path


CONSOLE_PATHS = ("/", "/?q=hi", "/message/nosuch", "/queue", "/refusals", "/summary")


@pytest.mark.parametrize(
    "path", [*CONSOLE_PATHS, "/api/v1/messages", "/api/v1/message/latest/raw", "/healthz"]
)
async def test_every_response_carries_the_security_headers(relay: Relay, path: str) -> None:
    response = await get(relay.web_port, path, "localhost")
    assert response.status_code in (200, 404)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    if path.split("?")[0] in CONSOLE_PATHS:
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
    else:
        assert "script-src" not in directives
        assert "style-src" not in directives


@pytest.mark.parametrize("path", CONSOLE_PATHS)
async def test_console_pages_run_only_their_own_files(relay: Relay, path: str) -> None:
    """The policy allows scripts and styles from the relay only, so the page must hold none
    inline: every script is a file of the console's, with its integrity hash, and no element
    carries an event handler or a style attribute."""
    response = await get(relay.web_port, path, "localhost")
    page = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert scripts
    for attributes, content in scripts:
        assert content.strip() == ""
        assert re.search(r'src="/static/[\w.-]+\?v=[0-9a-f]{16}"', attributes), attributes
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/=]+"', attributes), attributes
    assert "<style" not in page
    assert not re.search(r"<[^>]+\sstyle=", page)
    assert not re.search(r"<[^>]+\son[a-z]+=", page)
    assert "<script>alert" not in page


async def test_the_raw_message_is_text_and_never_sniffed(relay: Relay) -> None:
    response = await get(relay.web_port, "/api/v1/message/latest/raw", "localhost")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" in response.text
