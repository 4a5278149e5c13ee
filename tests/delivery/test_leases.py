"""The worker's background duties on SQLite and PostgreSQL: leases of deliveries in progress are
renewed (a lost one is logged), and after a configuration fault the transport is probed until it
works, then the entries held for it are released."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mxrelay.delivery.errors import ConfigurationFault
from mxrelay.delivery.leases import FaultProbe, LeaseKeeper
from mxrelay.delivery.transport import DeliveryJob, DeliveryOutcome
from mxrelay.health import ConditionName, Health
from mxrelay.model import DeliveryMode, QueueState
from mxrelay.store.backend import Database
from mxrelay.store.queue import HoldKind, Queue, QueueEntry, Settlement
from mxrelay.store.queue.admin import QueueAdmin
from tests.store.helpers import T0, accept, record
from tests.support.polling import until

NOW = T0.timestamp()
LEASE = 0.3  # renewed every 0.1 s


async def lease_of(queue: Queue, entry: QueueEntry) -> tuple[str | None, float | None]:
    found = await QueueAdmin(queue.db).get(entry.key)
    assert found is not None
    return found.lease_owner, found.lease_expires_at


async def test_the_leases_of_deliveries_in_progress_are_renewed(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(), record())
    busy, idle = await queue.claim("me", 2, NOW, LEASE)
    later = NOW + 100.0
    keeper = LeaseKeeper(queue, "me", lease_time=LEASE, now=lambda: later, entries=lambda: [busy])
    keeper.start()
    try:
        await until(lambda: _renewed(queue, busy, later + LEASE))
    finally:
        await keeper.stop()
    assert await lease_of(queue, idle) == ("me", NOW + LEASE)  # not in progress: left alone


async def _renewed(queue: Queue, entry: QueueEntry, expires: float) -> bool:
    return await lease_of(queue, entry) == ("me", expires)


async def test_a_lease_taken_by_another_owner_is_logged_as_lost(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    queue = Queue(db)
    await accept(db, record())
    [mine] = await queue.claim("me", 1, NOW, LEASE)
    assert await queue.requeue_expired(NOW + 1) == 1
    [theirs] = await queue.claim("other", 1, NOW + 1, 60.0)
    keeper = LeaseKeeper(queue, "me", lease_time=LEASE, now=lambda: NOW + 2, entries=lambda: [mine])
    keeper.start()
    try:
        await until(lambda: "queue.lease_lost" in caplog.text)
    finally:
        await keeper.stop()
    assert await lease_of(queue, theirs) == ("other", NOW + 61)


class Probed:
    """A transport whose probe fails while `problem` is set."""

    name = DeliveryMode.GRAPH

    def __init__(self) -> None:
        self.problem: ConfigurationFault | None = ConfigurationFault("consent withdrawn")
        self.probes = 0

    async def deliver(self, job: DeliveryJob) -> DeliveryOutcome:
        raise AssertionError("not delivering here")

    async def probe(self) -> None:
        self.probes += 1
        if self.problem is not None:
            raise self.problem

    async def aclose(self) -> None:
        pass


async def test_a_fault_is_probed_until_it_is_fixed_then_held_entries_go(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record())
    [entry] = await queue.claim("w", 1, NOW, LEASE)
    held = Settlement(
        entry=entry,
        owner="w",
        state=QueueState.HELD,
        next_attempt_at=NOW,
        attempts=0,
        now=NOW,
        hold_kind=HoldKind.FAULT,
        hold_reason="configuration fault: consent",
    )
    await db.write(queue.settle_batch, [held])
    assert await state_of(db, entry) is QueueState.HELD
    health, transport, woken = Health(), Probed(), asyncio.Event()
    probe = FaultProbe(
        transport, queue, interval=0.02, now=lambda: NOW, on_recovered=woken.set, health=health
    )
    probe.start()
    assert health.snapshot()[ConditionName.DELIVERY].ok
    probe.fault(ConfigurationFault("consent withdrawn"))
    assert (
        health.snapshot()[ConditionName.DELIVERY].detail == "configuration fault: consent withdrawn"
    )
    await until(lambda: _at_least(transport, 2))
    assert not health.snapshot()[ConditionName.DELIVERY].ok  # still failing
    transport.problem = None
    async with asyncio.timeout(10):
        await woken.wait()
    assert health.snapshot()[ConditionName.DELIVERY].ok
    assert not probe.probing
    assert await state_of(db, entry) is QueueState.QUEUED
    await probe.stop()


async def state_of(db: Database, entry: QueueEntry) -> QueueState:
    found = await QueueAdmin(db).get(entry.key)
    assert found is not None
    return found.state


async def _at_least(transport: Probed, probes: int) -> bool:
    return transport.probes >= probes


async def test_no_probing_once_stopped(db: Database) -> None:
    health = Health()
    probe = FaultProbe(
        Probed(), Queue(db), interval=0.02, now=lambda: NOW, on_recovered=lambda: None,
        health=health,
    )  # fmt: skip
    await probe.stop()
    probe.fault(ConfigurationFault("token refused"))
    assert not probe.probing
    assert not health.snapshot()[ConditionName.DELIVERY].ok
