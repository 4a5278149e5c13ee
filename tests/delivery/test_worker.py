"""The delivery worker on SQLite and PostgreSQL: the real smarthost transport against an SMTP server
on loopback, and a scripted transport for scheduling questions (faults, throttles, shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from mxrelay.config import load_settings
from mxrelay.delivery.errors import (
    ConfigurationFault,
    PermanentFailure,
    Throttled,
    ThrottledBeforeSending,
)
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.smarthost import SmarthostTransport
from mxrelay.delivery.transport import (
    DeliveryJob,
    DeliveryOutcome,
    RecipientOutcome,
    RecipientStatus,
)
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.model import DeliveryMode, QueueState, utc_now
from mxrelay.sinks.queued import StoreSink
from mxrelay.store import message_log
from mxrelay.store.backend import Database
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.open import open_store
from mxrelay.store.queue import Queue, QueueEntry
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from mxrelay.upstream.pool import UpstreamPool
from tests.store.helpers import message_bytes, transaction
from tests.support.polling import until
from tests.support.smarthost import Smarthost

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(timedelta(minutes=1), timedelta(hours=1), timedelta(days=5))


class Clock:
    """Wall clock the test moves by hand (retries become due without waiting)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Rig:
    db: Database
    queue: Queue
    committer: GroupCommitter
    sink: StoreSink
    clock: Clock
    health: Health
    metrics: Metrics

    def worker(self, transport: object, **kwargs: object) -> DeliveryWorker:
        options: dict[str, object] = {
            "owner": "test",
            "metrics": self.metrics,
            "health": self.health,
            "clock": self.clock,
            "rng": lambda: 0.0,
            "poll_interval": 0.05,
            "probe_interval": 0.05,
            "lease_time": 30.0,
        }
        options.update(kwargs)
        worker = DeliveryWorker(self.queue, transport, self.committer, POLICY, **options)  # type: ignore[arg-type]
        self.sink.waker = self.sink.direct = worker  # new mail goes straight to it, as in the relay
        return worker

    async def send(
        self, count: int = 1, *, recipients: tuple[str, ...] = ("bob@example.org",)
    ) -> list[str]:
        replies = [
            await self.sink.accept(
                transaction(recipients=recipients, data=message_bytes(), received_at=self.clock())
            )
            for _ in range(count)
        ]
        assert all(r.code == 250 for r in replies)
        return [r.text.rsplit(" ", 1)[1] for r in replies]

    async def states(self) -> dict[QueueState, int]:
        return (await self.queue.stats()).counts

    async def wait_states(self, expected: dict[str, int], within: float = 10.0) -> None:
        seen: list[dict[QueueState, int]] = []

        async def reached() -> bool:
            seen.append(await self.states())
            return seen[-1] == expected

        await until(
            reached, what=lambda: f"queue {expected} (last seen: {seen[-1:]})", within=within
        )


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    async with open_store(database_url) as db:
        metrics = Metrics()
        health = Health()
        clock = Clock()
        async with GroupCommitter(db, window=0.0, metrics=metrics, health=health) as committer:
            sink = StoreSink(committer, hostname="relay.example.net", clock=clock)
            yield Rig(db, Queue(db), committer, sink, clock, health, metrics)


@pytest.fixture
async def smtp_transport(smarthost: Smarthost) -> AsyncIterator[SmarthostTransport]:
    settings = load_settings({"MXRELAY_UPSTREAM": smarthost.url})
    pool = UpstreamPool(settings.upstream, local_hostname="relay.example.net", metrics=Metrics())
    transport = SmarthostTransport(pool)
    yield transport
    await transport.aclose()


async def test_delivers_queued_mail_with_the_trace_header(
    rig: Rig, smarthost: Smarthost, smtp_transport: SmarthostTransport
) -> None:
    ids = await rig.send(20)
    worker = rig.worker(smtp_transport, concurrency=4)
    await worker.start()
    try:
        received = await smarthost.wait_for(20)
        await rig.wait_states({"delivered": 20})
    finally:
        await worker.stop(5.0)
    assert all(m.data.startswith(b"Received: from app.example.net") for m in received)
    assert {
        m.data.split(b" id ", 1)[1].split(b";", 1)[0].split()[0].decode() for m in received
    } == set(ids)
    view = await message_log.get_message(rig.db, ids[0])
    assert view is not None
    [attempt] = view.attempts
    assert (attempt.outcome, attempt.code, attempt.transport) == ("delivered", 250, "smtp")
    assert attempt.remote_id is not None
    assert attempt.remote_id.startswith("Q")
    assert [r.state for r in view.recipients] == ["delivered"]
    assert rig.metrics.deliveries.labels(transport="smtp", outcome="delivered")._value.get() == 20


async def test_smarthost_down_then_back(
    rig: Rig, smarthost: Smarthost, smtp_transport: SmarthostTransport
) -> None:
    await smarthost.stop()
    ids = await rig.send(5)
    worker = rig.worker(smtp_transport)
    await worker.start()
    try:
        await rig.wait_states({"deferred": 5})
        view = await message_log.get_message(rig.db, ids[0])
        assert view is not None
        assert [a.outcome for a in view.attempts] == ["deferred"]
        assert [r.state for r in view.recipients] == ["deferred"]
        [row] = await QueueAdmin(rig.db).list_entries(QueueFilter(message_ids=(ids[0],)), now=0)
        assert row.entry.next_attempt_at == (START + timedelta(minutes=1)).timestamp()
        assert "smarthost unreachable" in (row.entry.last_error or "")
        await smarthost.start()
        rig.clock.advance(61)
        worker.wake()
        await smarthost.wait_for(5)
        await rig.wait_states({"delivered": 5})
    finally:
        await worker.stop(5.0)
    view = await message_log.get_message(rig.db, ids[0])
    assert view is not None
    assert [a.outcome for a in view.attempts] == ["deferred", "delivered"]


async def test_refusals_by_recipient(
    rig: Rig, smarthost: Smarthost, smtp_transport: SmarthostTransport
) -> None:
    smarthost.script.rcpt = {
        "busy@example.org": "450 4.2.1 Mailbox busy",
        "gone@example.org": "550 5.1.1 No such user",
    }
    [mixed] = await rig.send(recipients=("ok@example.org", "busy@example.org", "gone@example.org"))
    [dead] = await rig.send(recipients=("gone@example.org",))
    worker = rig.worker(smtp_transport)
    await worker.start()
    try:
        await rig.wait_states({"deferred": 1, "dead": 1})
        view = await message_log.get_message(rig.db, mixed)
        assert view is not None
        assert {r.address: (r.state, r.code) for r in view.recipients} == {
            "ok@example.org": ("delivered", 250),
            "busy@example.org": ("deferred", 450),
            "gone@example.org": ("failed", 550),
        }
        assert smarthost.delivered_to() == ["ok@example.org"]
        smarthost.script.rcpt = {}
        rig.clock.advance(61)
        worker.wake()
        await rig.wait_states({"delivered": 1, "dead": 1})
    finally:
        await worker.stop(5.0)
    assert smarthost.delivered_to() == ["ok@example.org", "busy@example.org"]  # not twice
    dead_view = await message_log.get_message(rig.db, dead)
    assert dead_view is not None
    assert [a.outcome for a in dead_view.attempts] == ["failed"]


class Scripted:
    """A transport answering from a script (for scheduling questions only)."""

    name = DeliveryMode.SMTP

    def __init__(self, *steps: Callable[[DeliveryJob], Awaitable[DeliveryOutcome]]) -> None:
        self.steps = list(steps)
        self.jobs: list[DeliveryJob] = []
        self.probe_error: Exception | None = None
        self.probes = 0

    async def deliver(self, job: DeliveryJob) -> DeliveryOutcome:
        self.jobs.append(job)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        return await step(job)

    async def probe(self) -> None:
        self.probes += 1
        if self.probe_error is not None:
            raise self.probe_error

    async def aclose(self) -> None:
        return None


async def ok(job: DeliveryJob) -> DeliveryOutcome:
    return DeliveryOutcome(
        tuple(RecipientOutcome(r, RecipientStatus.DELIVERED, 202) for r in job.recipients)
    )


def raising(error: Exception) -> Callable[[DeliveryJob], Awaitable[DeliveryOutcome]]:
    async def step(job: DeliveryJob) -> DeliveryOutcome:
        raise error

    return step


async def test_configuration_fault_holds_then_probe_releases(rig: Rig) -> None:
    transport = Scripted(raising(ConfigurationFault("token refused: invalid_client")), ok)
    transport.probe_error = ConfigurationFault("still refused")
    [message_id] = await rig.send()
    worker = rig.worker(transport)
    await worker.start()
    try:
        await rig.wait_states({"held": 1})
        assert rig.health.ready  # held, not refused: the relay goes on accepting
        assert "configuration fault" in rig.health.degraded()["delivery"]
        entry = await QueueAdmin(rig.db).get(message_id)
        assert entry is not None
        assert (entry.attempts, entry.hold_kind) == (0, "fault")  # no attempt budget burnt
        await until(lambda: _probed(transport, 2))
        transport.probe_error = None
        await rig.wait_states({"delivered": 1})
        assert rig.health.failing() == {}
    finally:
        await worker.stop(5.0)


async def _probed(transport: Scripted, count: int) -> bool:
    return transport.probes >= count


async def test_throttle_before_sending_is_not_an_attempt(rig: Rig) -> None:
    transport = Scripted(
        raising(ThrottledBeforeSending("lane closed", retry_after=timedelta(seconds=30))), ok
    )
    [message_id] = await rig.send()
    worker = rig.worker(transport)
    await worker.start()
    try:
        await rig.wait_states({"deferred": 1})
        entry = await QueueAdmin(rig.db).get(message_id)
        assert entry is not None
        assert entry.attempts == 0
        assert entry.next_attempt_at == (START + timedelta(seconds=30)).timestamp()
        assert entry.last_error == "throttled before sending: lane closed"
        view = await message_log.get_message(rig.db, message_id)
        assert view is not None
        assert view.attempts == ()
        rig.clock.advance(30)
        worker.wake()
        await rig.wait_states({"delivered": 1})
    finally:
        await worker.stop(5.0)


@pytest.mark.slow
async def test_a_throttle_waits_its_retry_after_exactly_and_is_not_counted(rig: Rig) -> None:
    """Graph's 429 with Retry-After: the entry goes again when asked (the worker wakes for it;
    the poll is half a minute), and only the attempt that delivered counts."""
    answered: list[float] = []

    def throttled(job: DeliveryJob) -> Awaitable[DeliveryOutcome]:
        answered.append(asyncio.get_running_loop().time())
        return raising(Throttled("429 throttled", retry_after=timedelta(seconds=1.2), code=429))(
            job
        )

    async def accepted(job: DeliveryJob) -> DeliveryOutcome:
        answered.append(asyncio.get_running_loop().time())
        return await ok(job)

    transport = Scripted(throttled, throttled, accepted)
    rig.clock.now = utc_now()  # the worker runs on the wall clock: its timers are real
    [message_id] = await rig.send()
    worker = rig.worker(transport, clock=utc_now, poll_interval=30.0)
    await worker.start()
    try:
        await rig.wait_states({"delivered": 1}, within=12.0)
    finally:
        await worker.stop(5.0)
    first, second, third = answered
    # never before the Retry-After; well before the half-minute poll (room for a busy machine)
    assert 1.2 <= second - first < 5.0
    assert 1.2 <= third - second < 5.0
    entry = await QueueAdmin(rig.db).get(message_id)
    assert entry is not None
    assert entry.attempts == 1
    view = await message_log.get_message(rig.db, message_id)
    assert view is not None
    assert [(a.outcome, a.code) for a in view.attempts] == [
        ("throttled", 429),
        ("throttled", 429),
        ("delivered", 202),
    ]
    assert [r.attempts for r in view.recipients] == [1]
    throttles = rig.metrics.deliveries.labels(transport="smtp", outcome="throttled")
    assert throttles._value.get() == 2


async def test_permanent_failure_is_never_retried(rig: Rig) -> None:
    transport = Scripted(raising(PermanentFailure("mailbox does not exist", code=550)), ok)
    await rig.send()
    worker = rig.worker(transport)
    await worker.start()
    await rig.wait_states({"dead": 1})
    await worker.stop(5.0)
    restarted = rig.worker(transport)
    await restarted.start()  # start-up recovery must not revive it
    await restarted.stop(5.0)
    far_future = (START + timedelta(days=30)).timestamp()
    assert await rig.queue.claim("anyone", 10, far_future, 30.0) == []
    assert len(transport.jobs) == 1
    assert transport.jobs[0].received_at == START  # the same on every attempt
    assert await rig.states() == {"dead": 1}


async def test_stop_hands_back_leases_of_unfinished_deliveries(rig: Rig) -> None:
    started = asyncio.Event()

    async def hang(job: DeliveryJob) -> DeliveryOutcome:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await rig.send()
    worker = rig.worker(Scripted(hang))
    await worker.start()
    async with asyncio.timeout(10):
        await started.wait()
    assert await rig.states() == {"active": 1}
    await worker.stop(0.1)
    assert await rig.states() == {"queued": 1}
    [job_entry] = await QueueAdmin(rig.db).list_entries(QueueFilter(), now=0)
    assert job_entry.entry.attempts == 0


class CountingQueue(Queue):
    """The real queue, counting claims (to tell mail handed over from mail claimed)."""

    claims = 0

    async def claim(self, owner: str, limit: int, now: float, lease: float) -> list[QueueEntry]:
        entries = await super().claim(owner, limit, now, lease)
        self.claims += len(entries)
        return entries


async def test_new_mail_goes_straight_to_a_free_worker(
    rig: Rig, smarthost: Smarthost, smtp_transport: SmarthostTransport
) -> None:
    queue = CountingQueue(rig.db)
    rig.queue = queue
    worker = rig.worker(smtp_transport, concurrency=8)  # takes mail directly while 2 or fewer
    await worker.start()
    try:
        smarthost.delay = 0.2  # keeps two deliveries busy while the third message arrives
        first = await rig.send(2)
        third = await rig.send(1)  # the worker is loaded: queued, then claimed
        await smarthost.wait_for(3)
        await rig.wait_states({"delivered": 3})
    finally:
        await worker.stop(5.0)
    assert queue.claims == 1
    for message_id in (*first, *third):
        view = await message_log.get_message(rig.db, message_id)
        assert view is not None
        assert [a.outcome for a in view.attempts] == ["delivered"]


async def test_entries_claimed_ahead_wait_for_a_send_slot(rig: Rig) -> None:
    """As many entries again as there are slots are claimed and loaded ahead: never more than
    `concurrency` sends at once, and a slot freed by one send goes to the next without a claim
    in between (the next send starts while the first is still being settled)."""
    await rig.send(6)
    queue = CountingQueue(rig.db)
    rig.queue = queue
    gates = [asyncio.Event() for _ in range(6)]
    sending: list[int] = []
    most = 0

    async def gated(job: DeliveryJob) -> DeliveryOutcome:
        nonlocal most
        index = len(transport.jobs) - 1
        sending.append(index)
        most = max(most, len(sending))
        await gates[index].wait()
        sending.remove(index)
        return await ok(job)

    transport = Scripted(gated)
    worker = rig.worker(transport, concurrency=2)
    await worker.start()
    try:
        await until(lambda: len(transport.jobs) == 2, what="two sends started")
        await until(lambda: queue.claims == 4, what="two more claimed ahead")
        assert await rig.states() == {"active": 4, "queued": 2}
        claims = queue.claims
        gates[0].set()
        await until(lambda: len(transport.jobs) == 3, what="the third send in the freed slot")
        assert queue.claims in (claims, claims + 1)  # the refill, not the start, needs a claim
        for gate in gates:
            gate.set()
        await rig.wait_states({"delivered": 6})
    finally:
        await worker.stop(5.0)
    assert most == 2


async def test_stop_returns_entries_claimed_ahead_without_sending_them(rig: Rig) -> None:
    """Entries waiting for a slot go back to the queue at once, unattempted; the sends in
    progress get the grace period."""
    await rig.send(4)
    release = asyncio.Event()

    async def slow(job: DeliveryJob) -> DeliveryOutcome:
        await release.wait()
        return await ok(job)

    transport = Scripted(slow)
    worker = rig.worker(transport, concurrency=2)
    await worker.start()
    await until(lambda: len(transport.jobs) == 2, what="two sends started")
    await rig.wait_states({"active": 4})
    stopping = asyncio.create_task(worker.stop(5.0))
    await asyncio.sleep(0.1)
    release.set()
    await stopping
    assert len(transport.jobs) == 2
    assert await rig.states() == {"delivered": 2, "queued": 2}
    entries = await QueueAdmin(rig.db).list_entries(QueueFilter(states=(QueueState.QUEUED,)), now=0)
    assert [e.entry.attempts for e in entries] == [0, 0]
