"""Pacing end to end: the transport against a stand-in that enforces Microsoft's limits itself."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from mxrelay.delivery.errors import Throttled, ThrottledBeforeSending
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.graph.pacing import Pacer, PacingLimits
from mxrelay.delivery.transport import DeliveryJob, RecipientStatus
from mxrelay.metrics import Metrics
from mxrelay.model import PacingLimit
from mxrelay.store.lanes import LaneStore
from mxrelay.store.open import open_store
from tests.delivery.graph.test_lanes import break_the_lanes
from tests.support.graph_harness import graph_transport, job, message, relay_environ
from tests.support.graph_standin import GraphStandIn, MailboxLimits

RATE = 10.0  # messages per second the relay is configured for


async def drain(
    transport: GraphTransport,
    jobs: Sequence[DeliveryJob],
    *,
    workers: int = 4,
    within: float = 30.0,
) -> int:
    """Deliver `jobs` with `workers` concurrent deliveries, handing each throttled job back
    exactly when the transport said (as the queue does). Returns how many deferrals it took."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = [(loop.time(), index) for index in range(len(jobs))]
    busy = 0
    deferrals = 0

    async def worker() -> None:
        nonlocal busy, deferrals
        while pending or busy:
            if not pending:
                await asyncio.sleep(0.01)  # another worker may hand a job back
                continue
            due, index = heapq.heappop(pending)
            assert due < deadline, "the backlog did not drain in time"
            busy += 1
            try:
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())  # the queue's timer for this entry
                await transport.deliver(jobs[index])
            except Throttled as throttled:
                deferrals += 1
                retry = loop.time() + throttled.retry_after.total_seconds()
                heapq.heappush(pending, (retry, index))
            finally:
                busy -= 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), within)
    return deferrals


@pytest.fixture
def enforcing(tmp_path: Path) -> Iterator[GraphStandIn]:
    """Microsoft's kind of limits with a second where Microsoft has a minute: 10 messages and
    20 requests per second per mailbox, 4 requests at once. The stand-in counts by arrival, over
    a window 2 % shorter than the relay's, which absorbs loopback jitter in arrival times; a
    burst still breaks it at once."""
    limits = MailboxLimits(messages=(10, 0.98), requests=(20, 0.98), concurrency=4)
    with GraphStandIn.running(tmp_path, limits=limits) as server:
        yield server


def per_second(messages: int = 10, requests: int = 20) -> Pacer:
    return Pacer(
        PacingLimits(
            messages=messages,
            requests=requests,
            upload_bytes=0,
            concurrency=4,
            recipients=0,
            messages_window=1.0,
            requests_window=1.0,
        )
    )


@pytest.mark.slow
async def test_paced_backlog_goes_at_the_configured_rate_without_a_single_429(
    enforcing: GraphStandIn,
) -> None:
    metrics = Metrics()
    metrics.prime("test")
    jobs = [job(message(subject=f"m{i}")) for i in range(25)]
    async with graph_transport(enforcing, metrics=metrics, pacer=per_second()) as transport:
        deferrals = await drain(transport, jobs)
    sent = enforcing.sent()
    assert len(sent) == len(jobs)
    assert enforcing.throttled == 0
    assert all(r.status == 202 for r in enforcing.send_requests())
    arrivals = sorted(m.at for m in sent)
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert achieved <= RATE * 1.02  # never faster than configured, give or take arrival jitter
    assert 0 < deferrals <= 2 * len(jobs)  # most of the backlog waited in the queue, once
    waits = metrics.registry.get_sample_value(
        "mxrelay_graph_pacing_waits_total", {"limit": "messages"}
    )
    assert waits == deferrals


@pytest.mark.slow
async def test_the_same_backlog_unpaced_collects_429s(enforcing: GraphStandIn) -> None:
    """The stand-in's limits are real: without pacing the burst is throttled, and the lane
    closes for everyone on that mailbox."""
    jobs = [job(message(subject=f"m{i}")) for i in range(25)]
    async with graph_transport(enforcing) as transport:
        await drain(transport, jobs)
    assert enforcing.throttled > 0
    assert len(enforcing.sent()) == len(jobs)


async def test_concurrency_cap_holds_with_more_deliveries_than_slots(tmp_path: Path) -> None:
    limits = MailboxLimits(messages=None, requests=None, concurrency=4)
    with GraphStandIn.running(tmp_path, latency=0.05, limits=limits) as standin:
        environ = relay_environ(standin, MXRELAY_GRAPH_CONCURRENCY="4")
        jobs = [job(message(subject=f"m{i}")) for i in range(16)]
        async with graph_transport(standin, environ=environ) as transport:
            await drain(transport, jobs, workers=8)
        assert len(standin.sent()) == len(jobs)
        assert standin.throttled == 0
        assert standin.max_in_flight <= 4


async def test_daily_recipient_budget_makes_messages_wait_not_fail(enforcing: GraphStandIn) -> None:
    environ = relay_environ(enforcing, MXRELAY_GRAPH_DAILY_RECIPIENT_LIMIT="3")
    recipients = ("alice@example.net", "bob@example.net")
    async with graph_transport(enforcing, environ=environ) as transport:
        await transport.deliver(job(message(), recipients))
        with pytest.raises(ThrottledBeforeSending, match="recipients limit") as raised:
            await transport.deliver(job(message(), recipients))
    assert timedelta(hours=23) < raised.value.retry_after <= timedelta(hours=24)
    assert len(enforcing.send_requests()) == 1


async def test_upload_budget_makes_messages_wait(enforcing: GraphStandIn) -> None:
    environ = relay_environ(enforcing, MXRELAY_GRAPH_UPLOAD_BYTES_PER_5_MINUTES="6000")
    async with graph_transport(enforcing, environ=environ) as transport:
        await transport.deliver(job(message(body="x" * 3000)))
        with pytest.raises(ThrottledBeforeSending, match="upload bytes limit"):
            await transport.deliver(job(message(body="y" * 3000)))


def test_pacing_limit_labels_match_the_metric_labels() -> None:
    assert Metrics.graph_pacing_waits.values("limit") == tuple(PacingLimit)


async def test_with_shared_lanes_a_store_failure_never_hides_graphs_answer(
    tmp_path: Path, database_url: str
) -> None:
    """The store breaks while the request is on its way: the message was accepted, and the
    transport says so (a failed release must not turn a 202 into a retry, which would send it
    twice); the next message waits in the queue, unsent."""
    with GraphStandIn.running(tmp_path, latency=0.5) as standin:
        environ = relay_environ(standin, MXRELAY_GRAPH_CONCURRENCY="4")
        async with (
            open_store(database_url) as db,
            graph_transport(standin, environ=environ) as transport,
        ):
            transport.share_lanes(LaneStore(db))
            sending = asyncio.create_task(transport.deliver(job(message())))
            await asyncio.to_thread(standin.wait_for, lambda: len(standin.requests) >= 3, 10.0)
            await db.write(break_the_lanes)
            outcome = await sending
            assert [r.status for r in outcome.recipients] == [RecipientStatus.DELIVERED]
            with pytest.raises(ThrottledBeforeSending, match="pacing lanes cannot be updated"):
                await transport.deliver(job(message(subject="next")))
    assert len(standin.sent()) == 1
