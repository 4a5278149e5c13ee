"""MXRELAY_SMTP_DATA_MEMORY_LIMIT: message data held at once is bounded by the deployment, not by
connections × message size. A transaction that would pass it gets 452 4.3.1 (the client tries
again later); messages under 64 KiB never touch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mxrelay.model import MailParams, Reply, SessionInfo, Transaction
from mxrelay.smtp.sink import SinkTransaction
from tests.support.processes import ServeProcess
from tests.support.smtp_relay import (
    RecordingSink,
    RelayFactory,
    RelayThread,
    Wire,
    _RecordingTransaction,
    smtp_settings,
)

INSUFFICIENT = "452 4.3.1 Error: insufficient system storage, try again later"


def message(size: int) -> bytes:
    line = b"x" * 98 + b"\r\n"
    return b"Subject: sized\r\n\r\n" + line * (size // len(line))


@dataclass
class GatedSink(RecordingSink):
    """Holds the first finished transaction until the test opens the gate (a slow store, say)."""

    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    finishing: int = 0

    def begin(self, session: SessionInfo, mail_from: str, params: MailParams) -> SinkTransaction:
        return _GatedTransaction(self)

    async def hold(self) -> None:
        self.finishing += 1
        if self.finishing == 1:
            self.arrived.release()
            await asyncio.to_thread(self.gate.wait, 30)


class _GatedTransaction(_RecordingTransaction):
    sink: GatedSink

    async def finish(self, transaction: Transaction) -> Reply:
        await self.sink.hold()
        return await super().finish(transaction)


@pytest.fixture
def gated(make_relay: RelayFactory) -> Iterator[tuple[RelayThread, GatedSink]]:
    sink = GatedSink()
    relay = make_relay(
        settings=smtp_settings(max_message_size="1MiB", data_memory_limit="1MiB"), sink=sink
    )
    yield relay, sink
    sink.gate.set()


def send(relay: RelayThread, data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP(relay.host, relay.port, timeout=30) as client:
        client.ehlo("c.example")
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        return client.data(data)


@contextlib.contextmanager
def first_message_held(relay: RelayThread, sink: GatedSink) -> Iterator[Future[tuple[int, bytes]]]:
    """While inside, a 700 KB message holds its share of the 1 MiB budget in the sink."""
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(send, relay, message(700_000))
        assert sink.arrived.acquire(timeout=30)
        try:
            yield first
        finally:
            sink.gate.set()


def test_a_transaction_past_the_budget_gets_452_and_may_try_again(
    gated: tuple[RelayThread, GatedSink],
) -> None:
    relay, sink = gated
    with first_message_held(relay, sink) as first:
        assert relay.metric("mxrelay_smtp_data_memory_bytes") == 1024 * 1024
        assert send(relay, message(700_000)) == (452, INSUFFICIENT[4:].encode())
        assert send(relay, message(20_000))[0] == 250  # small mail never waits for the budget
    assert first.result(30)[0] == 250
    assert send(relay, message(700_000))[0] == 250  # the budget was given back
    assert relay.metric("mxrelay_smtp_data_memory_bytes") == 0
    assert relay.metric("mxrelay_smtp_messages_total", outcome="tempfail") == 1


def test_a_declared_size_past_what_is_left_is_refused_at_mail(
    gated: tuple[RelayThread, GatedSink],
) -> None:
    relay, sink = gated
    with first_message_held(relay, sink):
        wire = Wire(relay)
        try:
            wire.read()
            wire.command("EHLO c.example")
            assert wire.command("MAIL FROM:<a@example.org> SIZE=600000") == INSUFFICIENT
            assert wire.command("MAIL FROM:<a@example.org> SIZE=60000").startswith("250")
        finally:
            wire.close()


def test_a_session_that_times_out_in_data_gives_its_share_back(make_relay: RelayFactory) -> None:
    relay = make_relay(
        settings=smtp_settings(max_message_size="4MiB", data_memory_limit="4MiB", data_timeout="1s")
    )
    wire = Wire(relay)
    try:
        wire.read()
        wire.command("EHLO c.example")
        wire.command("MAIL FROM:<a@example.org>")
        wire.command("RCPT TO:<b@example.net>")
        assert wire.command("DATA").startswith("354")
        wire.send(message(2_000_000))
        assert wire.read() == "421 4.4.2 Error: timeout exceeded"
    finally:
        wire.close()
    assert relay.metric("mxrelay_smtp_data_memory_bytes") == 0


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_concurrent_large_messages_stay_within_the_budget(tmp_path: Path) -> None:
    """`mxrelay serve` (hold mode, SQLite), 24 sessions sending 8 MiB at once: without a budget
    the process grew by about 400 MiB, with 16 MiB by about 90 (a message being stored takes a
    few times its size)."""
    relay = ServeProcess(
        {
            "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'mxrelay.db'}",
            "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
            "MXRELAY_MAX_MESSAGE_SIZE": "9MiB",
            "MXRELAY_SMTP_DATA_MEMORY_LIMIT": "16MiB",
            "MXRELAY_LOG_LEVEL": "warning",
        },
        tmp_path / "relay.log",
    )
    try:
        before = peak_rss(relay.process.pid)
        data = message(8 * 1024 * 1024)

        def one(_: int) -> int:
            with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=120) as client:
                client.ehlo("c.example")
                client.mail("a@example.org")
                client.rcpt("b@example.net")
                return client.data(data)[0]

        with ThreadPoolExecutor(24) as pool:
            codes = list(pool.map(one, range(24)))
        grown = peak_rss(relay.process.pid) - before
    finally:
        relay.close()
    assert grown < 160 * 1024 * 1024, f"grew by {grown / 2**20:.0f} MiB"
    assert set(codes) == {250, 452}, codes
    print(f"VmHWM grew by {grown / 2**20:.0f} MiB; {codes.count(250)} of 24 accepted")
