"""Graceful shutdown: stop accepting, 421 4.3.2 to new commands, in-flight transactions finish."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import Future

import aiosmtplib
import pytest

from tests.support.smtp_relay import RecordingSink, RelayFactory, RelayThread, Wire, smtp_settings

SHUTTING_DOWN = "421 4.3.2 Service shutting down, closing transmission channel"


def test_shutdown_drains_in_flight_transactions(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    assert relay.server is not None
    busy, idle = Wire(relay), Wire(relay)
    try:
        busy.read()
        idle.read()
        idle.command("EHLO idle.example")
        busy.command("EHLO busy.example")
        assert busy.command("MAIL FROM:<a@example.org>").startswith("250")
        assert busy.command("RCPT TO:<b@example.net>").startswith("250")

        stopping: Future[None] = asyncio.run_coroutine_threadsafe(
            relay.server.stop(grace=10), relay.loop
        )
        # The idle session is told at once, and closed.
        assert idle.read() == "421 4.3.2 Service shutting down, closing transmission channel"
        assert idle.closed()
        # No new connections are accepted.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((relay.host, relay.port), timeout=2).close()
        # The transaction in flight completes; the next command is refused.
        assert busy.command("DATA").startswith("354")
        busy.send(b"Subject: in flight\r\n\r\nfinished during shutdown\r\n.\r\n")
        assert busy.read().startswith("250")
        assert busy.command("MAIL FROM:<a@example.org>") == (
            "421 4.3.2 Service shutting down, closing transmission channel"
        )
        stopping.result(10)
    finally:
        busy.close()
        idle.close()
    assert len(sink.transactions) == 1


def test_a_session_idle_after_its_transaction_is_told_at_once(make_relay: RelayFactory) -> None:
    """A pooled client whose message was in flight at the stop, and which then idles, was only
    told when the grace period ended and it was aborted, without a 421."""
    relay = make_relay()
    assert relay.server is not None
    busy = Wire(relay, timeout=3)
    try:
        busy.read()
        busy.command("EHLO busy.example")
        assert busy.command("MAIL FROM:<a@example.org>").startswith("250")
        assert busy.command("RCPT TO:<b@example.net>").startswith("250")
        stopping = asyncio.run_coroutine_threadsafe(relay.server.stop(grace=5), relay.loop)
        assert busy.command("DATA").startswith("354")
        busy.send(b"Subject: in flight\r\n\r\nbody\r\n.\r\n")
        assert busy.read().startswith("250")
        started = time.monotonic()
        assert busy.read() == SHUTTING_DOWN  # unasked: the client is idle now
        assert busy.closed()
        stopping.result(5)
        assert time.monotonic() - started < 2
    finally:
        busy.close()


def test_a_session_busy_when_the_stop_began_is_told_after_its_reply(
    make_relay: RelayFactory,
) -> None:
    """Here busy in the error sleep: the stop's interruption only reaches a session waiting for
    input, and the session did not look again before it awaited the next command."""
    relay = make_relay(
        settings=smtp_settings(soft_error_limit=1, error_limit=50, error_sleep_time="0.6s")
    )
    assert relay.server is not None
    wire = Wire(relay, timeout=3)
    try:
        wire.read()
        wire.command("EHLO c.example")
        assert wire.command("BOGUS 1").startswith("500")
        wire.send(b"BOGUS 2\r\n")  # over the soft limit: the reply waits 0.6 s
        time.sleep(0.2)
        stopping = asyncio.run_coroutine_threadsafe(relay.server.stop(grace=5), relay.loop)
        assert wire.read().startswith("500")
        assert wire.read() == SHUTTING_DOWN
        stopping.result(5)
    finally:
        wire.close()


def test_shutdown_grace_period_is_bounded(make_relay: RelayFactory) -> None:
    relay = make_relay()
    assert relay.server is not None
    stuck = Wire(relay)
    try:
        stuck.read()
        stuck.command("EHLO slow.example")
        stuck.command("MAIL FROM:<a@example.org>")  # a transaction that never finishes
        relay.call(relay.server.stop(grace=0.3), timeout=10)
        assert relay.server.active_connections == 0
        assert stuck.file.read() == b""  # aborted
    finally:
        stuck.close()


async def test_aiosmtplib_client_sends_a_message(relay: RelayThread) -> None:
    async with aiosmtplib.SMTP(
        hostname=relay.host, port=relay.port, start_tls=False, timeout=10
    ) as client:
        errors, response = await client.sendmail(
            "a@example.org", ["b@example.net", "c@example.net"], b"Subject: aio\r\n\r\nhello\r\n"
        )
    assert errors == {}
    assert response.startswith("2.0.0")
    assert isinstance(relay.sink, RecordingSink)
    assert relay.sink.transactions[0].recipients == ("b@example.net", "c@example.net")
