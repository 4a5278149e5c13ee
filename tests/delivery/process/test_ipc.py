"""The relay ↔ delivery process wire: frames over a real socket pair arrive whole and in order,
anything else is dropped, and metric updates recorded in the child land in the relay's registry."""

from __future__ import annotations

import asyncio
import pickle
import socket

from mxrelay.config import load_settings
from mxrelay.delivery.process.ipc import (
    HEADER,
    Frame,
    FrameProtocol,
    HandOver,
    HealthChange,
    MetricApplier,
    MetricRecorder,
    MetricUpdate,
    MetricUpdates,
    Ready,
    Settled,
    Start,
    Stop,
    Wake,
    apply_updates,
)
from mxrelay.health import ConditionName
from mxrelay.metrics import Metrics
from mxrelay.model import QueueState
from mxrelay.store.queue import LoadedEntry, QueueEntry

LOADED = LoadedEntry(
    entry=QueueEntry(
        id=7,
        message_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
        variant=0,
        state=QueueState.ACTIVE,
        created_at=1.0e9,
        queued_at=1.0e9,
        next_attempt_at=1.0e9,
        attempts=0,
        lease_owner="relay:4242:abc",
        lease_expires_at=1.0e9 + 60,
    ),
    mail_from="app@example.net",
    smtputf8=False,
    received_header="Received: from app\r\n",
    data=b"Subject: hi\r\n\r\n\x00\xff body\r\n",
    transforms=("strip-ics",),
    recipients=("user@example.org",),
    received_at=1.0e9,
    header_from="app@example.net",
)


async def test_frames_arrive_whole_and_in_order() -> None:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    got: list[Frame] = []
    lost = loop.create_future()
    sender = FrameProtocol(lambda frame: None, lambda exc: None)
    receiver = FrameProtocol(got.append, lambda exc: lost.set_result(exc))
    await loop.connect_accepted_socket(lambda: sender, left)
    await loop.connect_accepted_socket(lambda: receiver, right)
    big = "x" * 1_000_000  # many reads for one frame
    frames: list[Frame] = [
        Start(load_settings({})),
        Wake(),
        HealthChange(ConditionName.STORE, False, big),
        MetricUpdates((MetricUpdate("deliveries", (("outcome", "delivered"),), "inc", 1.0),)),
        Ready(4242, "relay:4242:abc"),
        HandOver((LOADED,)),
        Settled(1),
        Stop(2.5),
    ]
    for frame in frames:
        assert sender.send(frame)
    sender.close()
    async with asyncio.timeout(10):
        assert await lost is None
    assert got == frames
    assert not sender.send(Wake())  # closed: nothing is sent


async def test_a_value_that_is_no_frame_is_dropped() -> None:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    first: asyncio.Future[Frame] = loop.create_future()
    receiver = FrameProtocol(first.set_result, lambda exc: None)
    await loop.connect_accepted_socket(lambda: receiver, right)
    for value in (("wake",), Wake()):  # the old tuple form, then a frame
        payload = pickle.dumps(value)
        left.sendall(HEADER.pack(len(payload)) + payload)
    async with asyncio.timeout(10):
        assert await first == Wake()
    left.close()
    receiver.close()


def test_recorded_metric_updates_apply_to_the_relay() -> None:
    recorded: list[int] = []
    recorder = MetricRecorder(lambda: recorded.append(1))
    child = recorder.as_metrics()
    child.deliveries.labels(transport="smtp", outcome="delivered").inc()
    child.deliveries.labels(transport="smtp", outcome="delivered").inc(2)
    child.delivery_latency.labels(transport="smtp").observe(0.25)
    child.store_commit_failures.inc()
    recorder.no_such_metric.inc()
    child.deliveries.labels(nonsense="x").inc()  # wrong labels
    updates = recorder.take()
    assert len(recorded) == 6
    assert recorder.take() == ()
    metrics = Metrics()
    assert apply_updates(metrics, updates) == 2
    registry = metrics.registry
    labels = {"transport": "smtp", "outcome": "delivered"}
    assert registry.get_sample_value("mxrelay_deliveries_total", labels) == 3
    latency = "mxrelay_delivery_attempt_duration_seconds_sum"
    assert registry.get_sample_value(latency, {"transport": "smtp"}) == 0.25
    assert registry.get_sample_value("mxrelay_store_commit_failures_total") == 1


def test_counter_updates_cross_the_pipe_once_per_bundle() -> None:
    """Increments of the same metric and labels are summed into one update; any other operation
    on them in between keeps its place, so the relay ends with the same values."""
    recorder = MetricRecorder()
    child = recorder.as_metrics()
    for _ in range(50):
        child.deliveries.labels(transport="smtp", outcome="delivered").inc()
        child.delivery_latency.labels(transport="smtp").observe(0.5)
    child.deliveries.labels(transport="smtp", outcome="deferred").inc(2)
    child.graph_configuration_fault.labels(fault="consent").inc()
    child.graph_configuration_fault.labels(fault="consent").set(0)
    child.graph_configuration_fault.labels(fault="consent").inc()
    updates = recorder.take()
    delivered = [
        u for u in updates if u.labels == (("outcome", "delivered"), ("transport", "smtp"))
    ]
    assert [(u.operation, u.value) for u in delivered] == [("inc", 50.0)]
    assert sum(u.operation == "observe" for u in updates) == 50
    fault = [(u.operation, u.value) for u in updates if u.metric == "graph_configuration_fault"]
    assert fault == [("inc", 1.0), ("set", 0.0), ("inc", 1.0)]
    metrics = Metrics()
    applier = MetricApplier(metrics)
    assert applier.apply(updates) == 0
    assert applier.apply(updates) == 0  # labelled metrics found again from what it remembers
    registry = metrics.registry
    labels = {"transport": "smtp", "outcome": "delivered"}
    assert registry.get_sample_value("mxrelay_deliveries_total", labels) == 100
    gauge = "mxrelay_graph_configuration_fault"
    assert registry.get_sample_value(gauge, {"fault": "consent"}) == 1
