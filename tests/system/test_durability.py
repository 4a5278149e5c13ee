"""Store-and-forward end to end: `mxrelay serve` in smtp mode as a real process, real SMTP clients,
a real smarthost on loopback, SIGKILL in the middle, several replicas on one PostgreSQL database.

The promise under test: once a client has a 250, the message is delivered (or its failure recorded),
whatever crashes. Duplicates are counted and explained in the test output.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
import pytest

from tests.support.polling import until
from tests.support.postgres import PostgresServer, clone
from tests.support.processes import ServeProcess, run_mxrelay, wait_for_exit
from tests.support.smarthost import Smarthost

QUEUED_AS = re.compile(r"queued as (\w+)")
TRACE_ID = re.compile(rb"\(mxrelay\) with \w+ id (\w+)")
SEQ = re.compile(rb"X-Test-Seq: (\d+)")
DRAIN_TIMEOUT = 60.0


def relay_env(database_url: str, upstream: str, **extra: str) -> dict[str, str]:
    return {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_UPSTREAM": upstream,
        "MXRELAY_DATABASE_URL": database_url,
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.org",  # no DNS needed for the recipients
        "MXRELAY_LOG_LEVEL": "warning",
        **extra,
    }


def message(seq: int) -> bytes:
    return (
        f"From: app@example.net\r\nTo: user{seq % 7}@example.org\r\nSubject: message {seq}\r\n"
        f"X-Test-Seq: {seq}\r\n\r\n" + "a line of body text to make it about 2 KB\r\n" * 40
    ).encode()


@dataclass
class Ledger:
    """What the clients were told: sequence number → queue ids that got a 250."""

    acked: dict[int, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    failures: int = 0

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.acked.values())


async def session(
    port: Callable[[], int],
    seqs: list[int],
    ledger: Ledger,
    up: asyncio.Event,
) -> None:
    """One client connection sending `seqs` in turn; after a failure it waits for the relay to be
    back, reconnects and sends the unacknowledged message again (as an application would)."""
    pending = list(seqs)
    for _ in range(20):  # reconnections, bounded
        if not pending:
            return
        await up.wait()
        try:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port(), timeout=20) as client:
                while pending:
                    seq = pending[0]
                    _, reply = await client.sendmail(
                        "app@example.net", [f"user{seq % 7}@example.org"], message(seq)
                    )
                    match = QUEUED_AS.search(reply)
                    assert match, reply
                    ledger.acked[seq].append(match.group(1))
                    pending.pop(0)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            ledger.failures += 1
    assert not pending, "a session could not finish"


def arrivals(host: Smarthost) -> tuple[collections.Counter[str], collections.Counter[int]]:
    by_id: collections.Counter[str] = collections.Counter()
    by_seq: collections.Counter[int] = collections.Counter()
    for received in host.received:
        trace = TRACE_ID.search(received.data)
        seq = SEQ.search(received.data)
        assert trace is not None
        assert seq is not None
        by_id[trace.group(1).decode()] += 1
        by_seq[int(seq.group(1))] += 1
    return by_id, by_seq


async def wait_for_ids(host: Smarthost, ids: set[str], within: float = DRAIN_TIMEOUT) -> None:
    async with asyncio.timeout(within):
        while not ids <= set(arrivals(host)[0]):
            await host.wait_for(len(host.received) + 1, within)


@pytest.mark.slow
async def test_sigkill_in_the_middle_loses_nothing_acknowledged(
    smarthost: Smarthost, workdir: Path
) -> None:
    env = relay_env(f"sqlite:///{workdir / 'relay.db'}", smarthost.url)
    relay = await ServeProcess.start(env, workdir / "first.log")
    up = asyncio.Event()
    up.set()
    ledger = Ledger()
    current = [relay]
    sessions = [
        asyncio.create_task(
            session(lambda: current[0].smtp_port, list(range(i, 2000, 20)), ledger, up)
        )
        for i in range(20)
    ]
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            while ledger.count < 700:
                await smarthost.wait_for(len(smarthost.received) + 1)
        up.clear()
        delivery = relay.children()
        assert len(delivery) == 1  # smtp mode delivers from a child process
        relay.process.send_signal(signal.SIGKILL)  # the relay dies; its delivery process sees it
        await asyncio.to_thread(relay.process.wait, 30)
        acked_before_kill = ledger.count
        delivered_before_kill = len(smarthost.received)
        # It stops at once and hands its deliveries back; until it has gone, the SQLite lock is
        # still held for the dead relay.
        assert await asyncio.to_thread(wait_for_exit, delivery[0], 10)
        relay.close()
        current[0] = await ServeProcess.start(env, workdir / "second.log")
        up.set()
        async with asyncio.timeout(DRAIN_TIMEOUT):
            await asyncio.gather(*sessions)
        every_ack = {qid for ids in ledger.acked.values() for qid in ids}
        await wait_for_ids(smarthost, every_ack)
    finally:
        for task in sessions:
            task.cancel()
        current[0].close()
    by_id, by_seq = arrivals(smarthost)
    assert set(ledger.acked) == set(range(2000))
    assert every_ack <= set(by_id)  # every 250 arrived
    redelivered = {qid: n for qid, n in by_id.items() if n > 1}
    resent = {seq: ids for seq, ids in ledger.acked.items() if len(ids) > 1}
    content_duplicates = {seq: n for seq, n in by_seq.items() if n > 1}
    print(
        f"\ncrash test: {acked_before_kill} acknowledged and {delivered_before_kill} delivered "
        f"before SIGKILL; {ledger.failures} client sessions broken by it; after restart all "
        f"{len(every_ack)} acknowledged messages arrived.\n"
        f"  same queue id delivered twice: {len(redelivered)} (the smarthost had them, but the "
        f"relay died before the attempt was recorded; they were sent again)\n"
        f"  messages acknowledged twice: {len(resent)} (a client resent after the crash)\n"
        f"  committed but never acknowledged (the client resent them): "
        f"{len(set(by_id) - every_ack)}\n"
        f"  content arriving more than once: {len(content_duplicates)}"
    )
    # Redeliveries are bounded by what was in flight: the worker's concurrency (16).
    assert len(redelivered) <= 16
    # Messages committed whose 250 the kill swallowed were sent again by their client; both
    # copies are delivered (nothing lost): at most one per session.
    assert len(set(by_id) - every_ack) <= 20


@pytest.mark.slow
async def test_smarthost_down_for_a_while(smarthost: Smarthost, workdir: Path) -> None:
    await smarthost.stop()
    env = relay_env(
        f"sqlite:///{workdir / 'relay.db'}",
        smarthost.url,
        MXRELAY_RETRY_INITIAL="1s",
        MXRELAY_RETRY_MAX="2s",
    )
    relay = await ServeProcess.start(env, workdir / "relay.log")
    try:
        ids = []
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port) as client:
            for seq in range(5):
                _, reply = await client.sendmail(
                    "app@example.net", ["user@example.org"], message(seq)
                )
                ids.append(QUEUED_AS.search(reply).group(1))  # type: ignore[union-attr]

        async def five_deferred() -> bool:
            listing = await _queue_list(env, "--state", "deferred")
            return listing.count("smarthost unreachable") >= 5

        await until(five_deferred, within=30)
        await smarthost.start()
        await wait_for_ids(smarthost, set(ids))
        shown = await _queue_cli(env, "queue", "show", ids[0])
        assert "smtp deferred" in shown
        assert "smtp delivered" in shown
    finally:
        relay.close()


async def _queue_cli(env: dict[str, str], *argv: str) -> str:
    result = await asyncio.to_thread(run_mxrelay, *argv, env=env)
    return result.stdout + result.stderr


async def _queue_list(env: dict[str, str], *filters: str) -> str:
    return await _queue_cli(env, "queue", "list", *filters)


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_relays_share_one_postgresql_queue(
    postgres_server: PostgresServer, smarthost: Smarthost, workdir: Path
) -> None:
    url = postgres_server.url(await asyncio.to_thread(clone, postgres_server))
    env = relay_env(url, smarthost.url, MXRELAY_QUEUE_LEASE_TIME="3s")
    first = await ServeProcess.start(env, workdir / "first.log")
    second = await ServeProcess.start(env, workdir / "second.log")
    try:
        ledger = Ledger()
        up = asyncio.Event()
        up.set()
        await asyncio.gather(
            *(
                session((lambda r: lambda: r.smtp_port)(relay), list(range(i, 400, 10)), ledger, up)
                for i, relay in enumerate([first, second] * 5)
            )
        )
        ids = {qid for qids in ledger.acked.values() for qid in qids}
        await wait_for_ids(smarthost, ids)
        by_id, _ = arrivals(smarthost)
        assert all(n == 1 for n in by_id.values())  # normal operation: never delivered twice

        # Now the first replica dies while it delivers: a slow smarthost keeps its leases busy.
        smarthost.delay = 0.3
        later = Ledger()
        await asyncio.gather(
            *(
                session(lambda: first.smtp_port, list(range(1000 + i, 1060, 4)), later, up)
                for i in range(4)
            )
        )
        await smarthost.wait_for(len(smarthost.received) + 1)
        # Both of its processes at once, as when its pod is killed: nobody hands leases back.
        for pid in [*first.children(), first.process.pid]:
            os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(first.process.wait, 30)
        smarthost.delay = 0.0
        more = {qid for qids in later.acked.values() for qid in qids}
        await wait_for_ids(smarthost, more)
        assert "queue.leases_expired" in second.log  # the survivor took the dead one's entries
    finally:
        first.close()
        second.close()
