"""Pacing decisions: limits never exceeded in any window, exact rates, one deferral per message."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.delivery.pacing import (
    CONCURRENCY_RETRY,
    Grant,
    Limit,
    Never,
    Pacer,
    PacingLimits,
    SlidingWindow,
    Wait,
)


def only_messages(per_minute: int) -> PacingLimits:
    return PacingLimits(per_minute, 0, 0, 0, 0)


def test_first_message_goes_at_once_then_evenly_spaced() -> None:
    pacer = Pacer(only_messages(30))
    first = pacer.acquire("a@example.net", "m1", recipients=1, size=10, now=100.0)
    assert isinstance(first, Grant)
    second = pacer.acquire("a@example.net", "m2", recipients=1, size=10, now=100.0)
    assert second == Wait(2.0, Limit.MESSAGES)
    third = pacer.acquire("a@example.net", "m3", recipients=1, size=10, now=100.5)
    assert third == Wait(3.5, Limit.MESSAGES)


def test_a_promised_slot_is_kept_for_its_message() -> None:
    pacer = Pacer(only_messages(60))
    assert isinstance(pacer.acquire("lane", "m1", recipients=1, size=1, now=0.0), Grant)
    assert pacer.acquire("lane", "m2", recipients=1, size=1, now=0.0) == Wait(1.0, Limit.MESSAGES)
    # Someone else arriving at m2's slot time gets the slot after it, not m2's.
    assert pacer.acquire("lane", "m3", recipients=1, size=1, now=1.0) == Wait(1.0, Limit.MESSAGES)
    assert isinstance(pacer.acquire("lane", "m2", recipients=1, size=1, now=1.0), Grant)
    # Coming back early is told the remaining time, without losing the slot.
    assert pacer.acquire("lane", "m3", recipients=1, size=1, now=1.5) == Wait(0.5, Limit.MESSAGES)
    assert isinstance(pacer.acquire("lane", "m3", recipients=1, size=1, now=2.0), Grant)


def test_lanes_are_independent() -> None:
    pacer = Pacer(only_messages(1))
    assert isinstance(pacer.acquire("a", "m1", recipients=1, size=1, now=0.0), Grant)
    assert isinstance(pacer.acquire("b", "m2", recipients=1, size=1, now=0.0), Grant)
    assert isinstance(pacer.acquire("a", "m3", recipients=1, size=1, now=0.0), Wait)


def test_backlog_is_sent_at_the_configured_rate_with_one_deferral_each() -> None:
    """A queue that hands each message back exactly when told: every message is deferred at
    most once and the sends are exactly 60/N seconds apart."""
    pacer = Pacer(only_messages(120))
    pending = [(0.0, f"m{i}") for i in range(200)]
    deferrals: dict[str, int] = defaultdict(int)
    sent: list[float] = []
    while pending:
        pending.sort()
        now, key = pending.pop(0)
        decision = pacer.acquire("lane", key, recipients=1, size=1, now=now)
        if isinstance(decision, Wait):
            deferrals[key] += 1
            pending.append((now + decision.seconds, key))
        else:
            assert isinstance(decision, Grant)
            pacer.release(decision, sent=True)
            sent.append(now)
    assert max(deferrals.values()) == 1
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) == pytest.approx(0.5)
    assert max(gaps) == pytest.approx(0.5)


def test_late_queue_never_breaks_the_window_and_keeps_the_rate() -> None:
    """A queue that hands messages back up to half a slot late: sends bunch, the sliding window
    catches the bunching (a short extra wait), and the rate stays the configured one."""
    rng = random.Random(7)
    limits = PacingLimits(
        messages_per_minute=60,
        requests_per_10_minutes=0,
        upload_bytes_per_5_minutes=0,
        concurrency=0,
        daily_recipients=0,
    )
    pacer = Pacer(limits)
    pending = [(0.0, f"m{i}") for i in range(300)]
    deferrals: dict[str, int] = defaultdict(int)
    sent: list[float] = []
    while pending:
        pending.sort()
        now, key = pending.pop(0)
        decision = pacer.acquire("lane", key, recipients=1, size=1, now=now)
        if isinstance(decision, Wait):
            deferrals[key] += 1
            pending.append((now + decision.seconds + rng.uniform(0, 0.5), key))
        else:
            assert isinstance(decision, Grant)
            pacer.release(decision, sent=True)
            sent.append(now)
    assert_window(sent, span=60.0, limit=60)
    assert sum(deferrals.values()) / len(sent) < 2
    assert (len(sent) - 1) / (sent[-1] - sent[0]) == pytest.approx(1.0, rel=0.01)


def assert_window(
    times: list[float], *, span: float, limit: float, weights: list[int] | None = None
) -> None:
    """No window (t - span, t] holds more than `limit` (weighted) events."""
    weights = weights or [1] * len(times)
    for end in times:
        inside = sum(w for t, w in zip(times, weights, strict=True) if end - span < t <= end)
        assert inside <= limit, f"{inside} in the window ending at {end}"


def test_concurrency_cap_is_app_wide() -> None:
    pacer = Pacer(PacingLimits(0, 0, 0, 2, 0))
    first = pacer.acquire("a", "m1", recipients=1, size=1, now=0.0)
    second = pacer.acquire("b", "m2", recipients=1, size=1, now=0.0)
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    assert pacer.acquire("c", "m3", recipients=1, size=1, now=0.0) == Wait(
        CONCURRENCY_RETRY, Limit.CONCURRENCY
    )
    pacer.release(first, sent=True)
    assert isinstance(pacer.acquire("c", "m3", recipients=1, size=1, now=0.0), Grant)


def test_retry_after_closes_the_lane_and_voids_promises() -> None:
    pacer = Pacer(only_messages(60))
    assert isinstance(pacer.acquire("lane", "m1", recipients=1, size=1, now=0.0), Grant)
    assert pacer.acquire("lane", "m2", recipients=1, size=1, now=0.0) == Wait(1.0, Limit.MESSAGES)
    pacer.block("lane", 30.0, now=0.5)
    assert pacer.acquire("lane", "m2", recipients=1, size=1, now=1.0) == Wait(
        29.5, Limit.RETRY_AFTER
    )
    assert isinstance(pacer.acquire("other", "m9", recipients=1, size=1, now=1.0), Grant)
    assert isinstance(pacer.acquire("lane", "m3", recipients=1, size=1, now=30.5), Grant)
    assert pacer.acquire("lane", "m2", recipients=1, size=1, now=30.5) == Wait(1.0, Limit.MESSAGES)


def test_daily_recipient_budget_waits_for_the_window_and_refunds_refusals() -> None:
    pacer = Pacer(PacingLimits(0, 0, 0, 0, 10))
    first = pacer.acquire("lane", "m1", recipients=6, size=1, now=0.0)
    assert isinstance(first, Grant)
    pacer.release(first, sent=True)
    waiting = pacer.acquire("lane", "m2", recipients=6, size=1, now=100.0)
    assert waiting == Wait(86300.0, Limit.RECIPIENTS)
    refused = pacer.acquire("lane", "m3", recipients=4, size=1, now=100.0)
    assert isinstance(refused, Grant)
    pacer.release(refused, sent=False)  # Graph refused it: Exchange did not count them
    assert isinstance(pacer.acquire("lane", "m4", recipients=4, size=1, now=101.0), Grant)


def test_a_message_too_big_for_a_budget_can_never_go() -> None:
    pacer = Pacer(PacingLimits(0, 0, 1000, 0, 5))
    too_many = pacer.acquire("lane", "m1", recipients=6, size=1, now=0.0)
    assert isinstance(too_many, Never)
    assert too_many.limit is Limit.RECIPIENTS
    too_big = pacer.acquire("lane", "m2", recipients=1, size=1001, now=0.0)
    assert isinstance(too_big, Never)
    assert too_big.limit is Limit.UPLOAD_BYTES


def test_extra_requests_count_against_the_request_limit() -> None:
    pacer = Pacer(PacingLimits(0, 2, 0, 0, 0))
    grant = pacer.acquire("lane", "m1", recipients=1, size=1, now=0.0)
    assert isinstance(grant, Grant)
    assert pacer.request("lane", now=0.1) is None
    assert pacer.request("lane", now=0.2) == Wait(pytest.approx(599.8), Limit.REQUESTS)  # type: ignore[arg-type]


def test_limits_off_grant_everything() -> None:
    pacer = Pacer(PacingLimits.off())
    grants = [
        pacer.acquire("lane", f"m{i}", recipients=10_000, size=10**9, now=0.0) for i in range(1000)
    ]
    assert all(isinstance(grant, Grant) for grant in grants)


def test_idle_lanes_are_forgotten() -> None:
    pacer = Pacer(only_messages(60))
    for i in range(50):
        grant = pacer.acquire(f"lane{i}", "m", recipients=1, size=1, now=0.0)
        assert isinstance(grant, Grant)
        pacer.release(grant, sent=True)
    assert pacer.lanes() == 50
    pacer.acquire("fresh", "m", recipients=1, size=1, now=120.0)
    assert pacer.lanes() == 1


def test_sliding_window_waits_until_enough_has_expired() -> None:
    window = SlidingWindow(10, 5.0)
    window.add(0.0, 4)
    window.add(1.0, 4)
    assert window.wait(2.0, 2) == 0.0
    assert window.wait(2.0, 3) == 3.0  # the event at 0 leaves the window at 5
    assert window.wait(2.0, 7) == 4.0  # both must leave
    assert window.wait(2.0, 11) == math.inf


# --- property: no limit is ever exceeded, whatever the sequence ------------------------------


@dataclass
class Model:
    grants: dict[str, list[Grant]] = field(default_factory=lambda: defaultdict(list))
    requests: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refunded: set[tuple[str, float]] = field(default_factory=set)
    blocked: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Acquire:
    lane: str
    key: int
    recipients: int
    size: int


@dataclass(frozen=True)
class Release:
    sent: bool


@dataclass(frozen=True)
class Request:
    lane: str


@dataclass(frozen=True)
class Block:
    lane: str
    seconds: float


lanes = st.sampled_from(["a", "b"])
operation = st.one_of(
    st.builds(Acquire, lanes, st.integers(0, 7), st.integers(1, 4), st.integers(0, 900)),
    st.builds(Release, st.booleans()),
    st.builds(Request, lanes),
    st.builds(Block, lanes, st.floats(0, 90)),
)


@given(
    steps=st.lists(st.tuples(st.floats(0, 40), operation), max_size=120),
    limits=st.builds(
        PacingLimits,
        st.integers(0, 4),
        st.integers(0, 6),
        st.integers(0, 2000),
        st.integers(0, 3),
        st.integers(0, 12),
    ),
)
def test_no_window_ever_exceeds_a_limit(
    steps: list[tuple[float, Acquire | Release | Request | Block]], limits: PacingLimits
) -> None:
    pacer = Pacer(limits)
    model = Model()
    outstanding: list[Grant] = []
    now = 0.0
    for delay, op in steps:
        now += delay
        if isinstance(op, Acquire):
            decision = pacer.acquire(
                op.lane, f"m{op.key}", recipients=op.recipients, size=op.size, now=now
            )
            if isinstance(decision, Grant):
                assert model.blocked.get(op.lane, -1.0) <= now
                model.grants[op.lane].append(decision)
                model.requests[op.lane].append(now)
                outstanding.append(decision)
                if limits.concurrency:
                    assert len(outstanding) <= limits.concurrency
            elif isinstance(decision, Wait):
                assert decision.seconds > 0
        elif isinstance(op, Release) and outstanding:
            grant = outstanding.pop(0)
            pacer.release(grant, sent=op.sent)
            if not op.sent:
                model.refunded.add((grant.lane, grant.at))
        elif isinstance(op, Request):
            if pacer.request(op.lane, now=now) is None:
                model.requests[op.lane].append(now)
        elif isinstance(op, Block):
            pacer.block(op.lane, op.seconds, now=now)
            model.blocked[op.lane] = max(model.blocked.get(op.lane, -1.0), now + op.seconds)
    for lane, grants in model.grants.items():
        times = [g.at for g in grants]
        if limits.messages_per_minute:
            assert_window(times, span=60.0, limit=limits.messages_per_minute)
        if limits.upload_bytes_per_5_minutes:
            assert_window(
                times,
                span=300.0,
                limit=limits.upload_bytes_per_5_minutes,
                weights=[g.size for g in grants],
            )
        if limits.daily_recipients:
            kept = [g for g in grants if (lane, g.at) not in model.refunded]
            assert_window(
                [g.at for g in kept],
                span=86400.0,
                limit=limits.daily_recipients,
                weights=[g.recipients for g in kept],
            )
    for times in model.requests.values():
        if limits.requests_per_10_minutes:
            assert_window(times, span=600.0, limit=limits.requests_per_10_minutes)
