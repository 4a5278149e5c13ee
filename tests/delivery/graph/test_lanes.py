"""Pacing lanes kept in the store, on SQLite and PostgreSQL: two replicas (two store handles)
share concurrency, promises, Retry-After pauses and budgets, a dead replica's leases lapse, and
the decisions are exactly those of the in-process lanes for the same sequence of calls."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
from sqlalchemy.engine import Connection

from mxrelay.delivery.graph.lanes import (
    STORE_RETRY,
    Lanes,
    LanesUnavailable,
    LocalLanes,
    SharedLanes,
)
from mxrelay.delivery.graph.pacing import (
    CONCURRENCY_RETRY,
    WINDOW_GUARD,
    Decision,
    Grant,
    Pacer,
    PacingLimits,
    Wait,
)
from mxrelay.model import PacingLimit
from mxrelay.store.lanes import LaneStore
from mxrelay.store.open import OpenMode, open_store
from tests.support.clocks import FakeClock

T0 = 1_800_000_000.0
HOLD = 40.0  # how long a request may take


Replicas = Callable[[PacingLimits], tuple[SharedLanes, SharedLanes]]


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def replicas(database_url: str, clock: FakeClock) -> AsyncIterator[Replicas]:
    """Two replicas' lanes on one store (each its own database handle), on one clock."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_store(database_url))
        second = await stack.enter_async_context(open_store(database_url, OpenMode.QUEUE))

        def make(limits: PacingLimits) -> tuple[SharedLanes, SharedLanes]:
            return (
                SharedLanes(LaneStore(first), limits, clock),
                SharedLanes(LaneStore(second), limits, clock),
            )

        yield make


async def ask(lanes: Lanes, lane: str, key: str, recipients: int = 1) -> Decision:
    return await lanes.acquire(lane, key, recipients=recipients, size=100, hold_for=HOLD)


def waits(decision: Decision, seconds: float, limit: PacingLimit) -> bool:
    return (
        isinstance(decision, Wait)
        and decision.limit is limit
        and decision.seconds == pytest.approx(seconds)
    )


async def test_concurrency_is_app_wide_across_replicas_and_a_dead_ones_slots_lapse(
    replicas: Replicas, clock: FakeClock
) -> None:
    a, b = replicas(PacingLimits(0, 0, 0, 2, 3))
    dying = await ask(a, "x@example.net", "m1", recipients=2)
    assert isinstance(dying, Grant)
    assert isinstance(await ask(b, "y@example.net", "m2"), Grant)
    assert waits(await ask(b, "z@example.net", "m3"), CONCURRENCY_RETRY, PacingLimit.CONCURRENCY)
    # Replica a dies with m1 in flight: its slot is held until the lease lapses, then m1
    # counts as sent then (two of x's three recipients for the day are gone).
    clock.now += HOLD - 1
    assert waits(await ask(b, "z@example.net", "m3"), CONCURRENCY_RETRY, PacingLimit.CONCURRENCY)
    clock.now += 2
    assert isinstance(await ask(b, "z@example.net", "m3"), Grant)
    assert waits(
        await ask(b, "x@example.net", "m4", recipients=2), 86_400 - 1, PacingLimit.RECIPIENTS
    )


async def test_a_slot_promised_by_one_replica_is_kept_by_the_other(
    replicas: Replicas, clock: FakeClock
) -> None:
    a, b = replicas(PacingLimits(60, 0, 0, 0, 0))
    spacing = 1.0 + WINDOW_GUARD
    first = await ask(a, "x@example.net", "m1")
    assert isinstance(first, Grant)
    await a.release(first, sent=True)
    assert waits(await ask(b, "x@example.net", "m2"), spacing, PacingLimit.MESSAGES)
    assert waits(await ask(a, "x@example.net", "m3"), 2 * spacing, PacingLimit.MESSAGES)
    clock.now += spacing
    assert isinstance(await ask(a, "x@example.net", "m2"), Grant)  # b's promise, kept by a
    assert waits(
        await ask(b, "x@example.net", "m3"), spacing, PacingLimit.MESSAGES
    )  # still its own


async def test_a_retry_after_closes_the_lane_for_every_replica_and_voids_promises(
    replicas: Replicas, clock: FakeClock
) -> None:
    a, b = replicas(PacingLimits(60, 0, 0, 0, 0))
    spacing = 1.0 + WINDOW_GUARD
    assert isinstance(await ask(a, "x@example.net", "m1"), Grant)
    assert waits(await ask(a, "x@example.net", "m2"), spacing, PacingLimit.MESSAGES)
    await b.block("x@example.net", 30.0)
    assert waits(await ask(a, "x@example.net", "m2"), 30.0, PacingLimit.RETRY_AFTER)
    assert isinstance(await ask(b, "y@example.net", "m9"), Grant)  # other mailboxes go on
    clock.now += 30.0
    assert isinstance(await ask(b, "x@example.net", "m3"), Grant)  # first back, first served
    assert waits(await ask(a, "x@example.net", "m2"), spacing, PacingLimit.MESSAGES)


async def test_a_retried_request_counts_on_every_replica(replicas: Replicas) -> None:
    a, b = replicas(PacingLimits(0, 2, 0, 0, 0))
    grant = await ask(a, "x@example.net", "m1")
    assert isinstance(grant, Grant)
    assert await a.request(grant, hold_for=HOLD) is None  # the retry after a 401
    assert waits(await ask(b, "x@example.net", "m2"), 600.0, PacingLimit.REQUESTS)


async def test_shared_lanes_decide_exactly_as_lanes_in_this_process(
    replicas: Replicas, clock: FakeClock
) -> None:
    """One code path for the decision: the same calls, alternating between two replicas, get the
    same answers as one process's lanes."""
    limits = PacingLimits(6, 12, 5000, 3, 8, 6.0, 12.0, 6.0, 30.0)
    local_clock = FakeClock(T0)
    local = LocalLanes(Pacer(limits), local_clock)
    shared = replicas(limits)
    rng = random.Random(10)
    in_flight: list[tuple[Grant, Grant]] = []
    for step in range(150):
        delay = rng.choice([0.0, 0.0, 0.1, 0.5, 1.5, 4.0])
        clock.now += delay
        local_clock.now += delay
        replica = shared[step % 2]
        roll = rng.random()
        if roll < 0.55:
            lane, key = rng.choice(["a", "a", "b"]), f"m{rng.randrange(8)}"
            recipients, size = rng.randint(1, 3), rng.randint(0, 2000)
            mine = await local.acquire(lane, key, recipients=recipients, size=size, hold_for=HOLD)
            theirs = await replica.acquire(
                lane, key, recipients=recipients, size=size, hold_for=HOLD
            )
            assert _same(mine, theirs), (step, mine, theirs)
            if isinstance(mine, Grant) and isinstance(theirs, Grant):
                in_flight.append((mine, theirs))
        elif roll < 0.85 and in_flight:
            mine_grant, their_grant = in_flight.pop(rng.randrange(len(in_flight)))
            sent = rng.random() < 0.8
            await local.release(mine_grant, sent=sent)
            await replica.release(their_grant, sent=sent)
        elif roll < 0.9:
            seconds = rng.choice([1.0, 5.0])
            await local.block("a", seconds)
            await replica.block("a", seconds)


def _same(mine: Decision, theirs: Decision) -> bool:
    if isinstance(mine, Wait) and isinstance(theirs, Wait):
        return mine.limit is theirs.limit and mine.seconds == pytest.approx(theirs.seconds)
    return type(mine) is type(theirs)


def break_the_lanes(conn: Connection) -> None:
    conn.exec_driver_sql("DROP TABLE pacing_promises")
    conn.exec_driver_sql("DROP TABLE pacing_lanes")


async def test_a_failing_store_stops_grants_but_never_raises_after_one(database_url: str) -> None:
    """Nothing is granted while the lanes cannot be read; what follows a grant (its release, a
    Retry-After) is logged and dropped rather than raised over Graph's answer."""
    async with open_store(database_url) as db:
        lanes = SharedLanes(LaneStore(db), PacingLimits(0, 2, 0, 2, 0))
        grant = await ask(lanes, "x@example.net", "m1")
        assert isinstance(grant, Grant)
        await db.write(break_the_lanes)
        with pytest.raises(LanesUnavailable, match="pacing lanes cannot be updated"):
            await ask(lanes, "x@example.net", "m2")
        assert await lanes.request(grant, hold_for=HOLD) == Wait(STORE_RETRY, PacingLimit.REQUESTS)
        await lanes.block("x@example.net", 5.0)
        await lanes.release(grant, sent=True)
