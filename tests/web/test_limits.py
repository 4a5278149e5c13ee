"""What one HTTP client can hold: a connection cap per listener, a deadline for a request's
headers, and a file limit raised at start, so half-open HTTP requests cannot starve SMTP."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.polling import eventually, until
from tests.support.processes import ServeProcess, wait_for_port
from tests.support.relay_app import running_relay

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
"""A request whose headers never end."""


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    env = {
        "MXRELAY_HTTP_HEADER_TIMEOUT": "1s",
        "MXRELAY_HTTP_CONNECTION_LIMIT": "5",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'limits.db'}",
    }
    async with running_relay(env) as running:
        yield running


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def held_open(port: int, data: bytes = PARTIAL) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def seconds_until_closed(stream: Stream, limit: float) -> float:
    """Reads until the relay closes the connection (at most `limit` seconds), then closes ours."""
    reader, writer = stream
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
        return time.monotonic() - started
    finally:
        writer.close()


async def test_headers_that_never_end_are_cut_off(relay: Relay) -> None:
    stream = await held_open(relay.web_port)
    assert 0.8 < await seconds_until_closed(stream, 4.0) < 3.0


async def test_a_kept_alive_connection_gets_the_same_deadline(relay: Relay) -> None:
    """After a response, bytes of a next request stop uvicorn's keep-alive timer (5 s); the
    header deadline still closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.web_port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        await asyncio.sleep(0.3)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await writer.drain()
        assert await seconds_until_closed((reader, writer), 4.0) < 3.0
    finally:
        writer.close()


async def test_a_slow_but_complete_request_is_answered(relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.web_port)
    try:
        for part in (
            b"GET /healthz HTTP/1.1\r\n",
            b"Host: localhost\r\n",
            b"Connection: close\r\n\r\n",
        ):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.3)
        assert (await reader.read()).startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()


async def test_past_the_cap_a_connection_is_closed_at_once(relay: Relay) -> None:
    held = [await held_open(relay.web_port) for _ in range(5)]
    try:
        await until(lambda: relay.web is not None and relay.web.open_connections == 5)
        extra = await held_open(relay.web_port)
        assert await seconds_until_closed(extra, 0.8) < 0.8  # well before the header deadline
        async with httpx.AsyncClient() as client:  # the other listener has its own cap
            probe = await client.get(f"http://127.0.0.1:{relay.metrics_port}/healthz")
            assert probe.status_code == 200
        for stream in held:  # the header deadline frees the places again
            await seconds_until_closed(stream, 4.0)
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{relay.web_port}/healthz")
            assert answer.status_code == 200
    finally:
        for _, writer in held:
            writer.close()


@contextmanager
def soft_file_limit(soft: int) -> Iterator[None]:
    """This process's soft RLIMIT_NOFILE lowered, so a child started meanwhile inherits it."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line")


def serve_env(dns: DnsServer, tmp_path: Path) -> dict[str, str]:
    return {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
        "MXRELAY_DNS_SERVERS": dns.address,
        "MXRELAY_HTTP_HEADER_TIMEOUT": "2s",
    }


@pytest.mark.slow
def test_serve_raises_its_soft_file_limit_to_the_hard_one(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 1024:
        pytest.skip("the hard limit here leaves nothing to raise")
    with soft_file_limit(256):
        serve = ServeProcess(serve_env(dns_server, tmp_path), tmp_path / "relay.log")
    try:
        soft, relay_hard = open_files_limits(serve.process.pid)
        assert relay_hard == hard
        assert soft == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
    finally:
        serve.close()


def smtp_greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.recv(512)


@pytest.mark.slow
def test_half_open_http_requests_do_not_stop_smtp_or_the_probes(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    """The report's case: 600 half-open requests to the UI against a relay held to 256 files.
    SMTP still greets, /healthz still answers, and the UI answers again after the deadline."""
    serve = ServeProcess(serve_env(dns_server, tmp_path), tmp_path / "relay.log")
    web_port = int(serve_env_port(serve))
    attackers: list[socket.socket] = []
    try:
        wait_for_port(web_port, process=serve.process)
        resource.prlimit(serve.process.pid, resource.RLIMIT_NOFILE, (256, 256))
        for _ in range(600):
            sock = socket.create_connection(("127.0.0.1", web_port), timeout=5)
            sock.sendall(PARTIAL)
            attackers.append(sock)
        assert smtp_greeting(serve.smtp_port).startswith(b"220 ")
        for path in ("/healthz", "/readyz"):
            url = f"http://127.0.0.1:{serve.metrics_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200

        def ui_answers() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=5) as r:
                assert r.status == 200
                return True

        # The held ones are cut off after 2 s; then the UI answers again.
        eventually(ui_answers, what="the UI answers again", interval=0.2, ignoring=(OSError,))
        assert serve.process.poll() is None
        assert "Too many open files" not in serve.log
    finally:
        for sock in attackers:
            sock.close()
        serve.close()


def serve_env_port(serve: ServeProcess) -> str:
    """The UI port the process was given (ServeProcess chooses it)."""
    args = Path(f"/proc/{serve.process.pid}/environ").read_bytes().split(b"\0")
    [value] = [a.split(b"=", 1)[1] for a in args if a.startswith(b"MXRELAY_HTTP_LISTEN=")]
    return value.decode().rsplit(":", 1)[1]
