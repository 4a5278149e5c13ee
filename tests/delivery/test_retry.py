"""The retry schedule: properties (Hypothesis) and the Postfix-like defaults."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from mxrelay.config import load_settings
from mxrelay.delivery.retry import (
    THROTTLE_FLOOR,
    Failure,
    RetryPolicy,
    RetryVerdict,
    backoff,
    next_attempt,
)

DEFAULT = RetryPolicy()
T0 = 1_800_000_000.0

policies = st.builds(
    lambda initial, factor, lifetime: RetryPolicy(
        timedelta(seconds=initial),
        timedelta(seconds=initial * factor),
        timedelta(seconds=lifetime),
    ),
    st.floats(min_value=0.1, max_value=3600),
    st.floats(min_value=1, max_value=1000),
    st.floats(min_value=1, max_value=30 * 86400),
)
unit = st.floats(min_value=0, max_value=1, exclude_max=True)


@given(
    policy=policies,
    attempts=st.integers(min_value=1, max_value=10_000),
    age=st.floats(min_value=0, max_value=60 * 86400),
    draw=unit,
    retry_after=st.none() | st.floats(min_value=0, max_value=7 * 86400),
)
def test_temporary_failure_schedule_stays_in_bounds(
    policy: RetryPolicy, attempts: int, age: float, draw: float, retry_after: float | None
) -> None:
    now = T0 + age
    decision = next_attempt(
        Failure.TEMPORARY,
        attempts=attempts,
        queued_at=T0,
        now=now,
        policy=policy,
        rng=lambda: draw,
        retry_after=retry_after,
    )
    deadline = T0 + policy.lifetime.total_seconds()
    if now >= deadline:
        assert decision.verdict is RetryVerdict.DEAD
        return
    assert decision.verdict is RetryVerdict.RETRY
    assert decision.at is not None
    assert decision.at > now  # never in the past, never "now" (no hot loop)
    wait = retry_after or 0.0
    assert decision.at >= now + wait  # never before the transport's Retry-After
    assert decision.at <= max(deadline, now + wait)  # never past the lifetime, unless Retry-After
    slack = 1e-6  # epoch seconds as floats: sums are exact only to a microsecond
    assert decision.at - now <= max(policy.maximum.total_seconds(), wait) + slack  # RETRY_MAX cap


@given(policy=policies, attempts=st.integers(min_value=1, max_value=200), draw=unit)
def test_backoff_never_decreases_with_more_attempts(
    policy: RetryPolicy, attempts: int, draw: float
) -> None:
    assert backoff(attempts + 1, policy, lambda: draw) >= backoff(attempts, policy, lambda: draw)


def test_defaults_follow_postfix() -> None:
    assert RetryPolicy.from_settings(load_settings({}).queue) == DEFAULT
    assert backoff(1, DEFAULT, lambda: 0.99) == 60.0  # first retry after a minute
    assert backoff(2, DEFAULT, lambda: 0.0) == 60.0
    assert backoff(2, DEFAULT, lambda: 0.5) == 90.0  # jitter between 1 and 2 minutes
    assert backoff(30, DEFAULT, lambda: 0.999999) <= 3600.0  # capped at an hour


def test_settings_are_read_from_the_environment() -> None:
    environ = {
        "MXRELAY_RETRY_INITIAL": "30s",
        "MXRELAY_RETRY_MAX": "5m",
        "MXRELAY_QUEUE_LIFETIME": "2d",
    }
    policy = RetryPolicy.from_settings(load_settings(environ).queue)
    assert policy == RetryPolicy(timedelta(seconds=30), timedelta(minutes=5), timedelta(days=2))


def test_the_last_retry_is_at_the_end_of_the_lifetime() -> None:
    now = T0 + DEFAULT.lifetime.total_seconds() - 10
    decision = next_attempt(
        Failure.TEMPORARY, attempts=50, queued_at=T0, now=now, policy=DEFAULT, rng=lambda: 0.9
    )
    assert decision.at == T0 + DEFAULT.lifetime.total_seconds()


def test_permanent_failure_is_a_dead_letter_at_once() -> None:
    decision = next_attempt(
        Failure.PERMANENT, attempts=1, queued_at=T0, now=T0, policy=DEFAULT, rng=lambda: 0.5
    )
    assert decision.verdict is RetryVerdict.DEAD


@given(age=st.floats(min_value=0, max_value=365 * 86400), wait=st.floats(0, 86400))
def test_a_throttle_before_sending_never_kills_mail(age: float, wait: float) -> None:
    decision = next_attempt(
        Failure.NOT_ATTEMPTED,
        attempts=1,
        queued_at=T0,
        now=T0 + age,
        policy=DEFAULT,
        rng=lambda: 0.5,
        retry_after=wait,
    )
    assert decision.verdict is RetryVerdict.RETRY
    assert decision.at == T0 + age + wait


@given(
    policy=policies,
    attempts=st.integers(min_value=0, max_value=10_000),
    age=st.floats(min_value=0, max_value=60 * 86400),
    wait=st.none() | st.floats(min_value=0, max_value=86400),
)
def test_a_throttle_retries_exactly_when_asked_until_the_lifetime_ends(
    policy: RetryPolicy, attempts: int, age: float, wait: float | None
) -> None:
    """429 and 503 with Retry-After: neither the backoff nor the attempts so far change the
    time; the lifetime still ends it."""
    now = T0 + age
    decision = next_attempt(
        Failure.THROTTLED,
        attempts=attempts,
        queued_at=T0,
        now=now,
        policy=policy,
        rng=lambda: 0.99,
        retry_after=wait,
    )
    if now >= T0 + policy.lifetime.total_seconds():
        assert decision.verdict is RetryVerdict.DEAD
        assert decision.reason.startswith("still throttled after")
    else:
        assert decision.verdict is RetryVerdict.RETRY
        assert decision.at == now + max(wait or 0.0, THROTTLE_FLOOR)


def test_a_throttle_of_two_seconds_is_two_seconds_with_the_default_backoff() -> None:
    decision = next_attempt(
        Failure.THROTTLED,
        attempts=7,
        queued_at=T0,
        now=T0,
        policy=DEFAULT,
        rng=lambda: 0.5,
        retry_after=2.0,
    )
    assert decision.at == T0 + 2.0  # not MXRELAY_RETRY_INITIAL (1 minute), not the 7th step
