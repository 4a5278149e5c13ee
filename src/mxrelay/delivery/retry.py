"""When to try again: a pure decision from an attempt's result, the entry's history and the clock.

Postfix's queue manager doubles its backoff between a minimal and a maximal time and bounces mail
older than `maximal_queue_lifetime`; procrastinate's `RetryStrategy.get_retry_decision` returns a
decision value and lets the worker persist it. `next_attempt()` does both: exponential backoff with
full jitter (a random delay between `MXRELAY_RETRY_INITIAL` and the doubled ceiling, capped by
`MXRELAY_RETRY_MAX`, so replicas retrying the same outage spread out), never earlier than a
transport's Retry-After, and a dead letter once the entry has been in the queue for
`MXRELAY_QUEUE_LIFETIME`. The last retry is scheduled at the end of the lifetime, not after it.

A throttle is not a failure. When the remote side asked to wait (Graph's 429, or a 503 with
Retry-After), the entry goes again exactly when it was asked to, as Microsoft's guidance says, and
the answer does not count for the backoff: a later real failure backs off as if it had not
happened. Only the queue lifetime bounds it. A throttle that stopped the attempt before anything
was sent (a closed pacing lane) is not an attempt at all: it is rescheduled for the Retry-After
time and never turns into a dead letter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from mxrelay.config import QueueSettings, format_duration

THROTTLE_FLOOR = 1.0
"""Shortest wait after a throttle (seconds): a `Retry-After: 0` must not turn into a hot loop."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial: timedelta = timedelta(minutes=1)
    maximum: timedelta = timedelta(hours=1)
    lifetime: timedelta = timedelta(days=5)

    @classmethod
    def from_settings(cls, settings: QueueSettings) -> RetryPolicy:
        return cls(settings.retry_initial, settings.retry_max, settings.lifetime)


class Failure(enum.StrEnum):
    TEMPORARY = "temporary"
    """The attempt failed for now (4xx, connection trouble, throttling by the remote side)."""
    PERMANENT = "permanent"
    """The remote side refused for good (5xx): dead letter at once."""
    THROTTLED = "throttled"
    """The remote side asked to wait (429, 503 with Retry-After): retried when it said, not
    counted for the backoff; a dead letter only once the lifetime is over."""
    NOT_ATTEMPTED = "not_attempted"
    """Stopped before sending (pacing); not counted against the lifetime."""


class RetryVerdict(enum.StrEnum):
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    verdict: RetryVerdict
    at: float | None
    """Epoch seconds of the next attempt (RETRY only)."""
    reason: str = ""


def backoff(attempts: int, policy: RetryPolicy, rng: Callable[[], float]) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1 = the first)."""
    initial = policy.initial.total_seconds()
    maximum = policy.maximum.total_seconds()
    exponent = min(max(attempts - 1, 0), 62)
    ceiling = min(maximum, initial * (2.0**exponent))
    if ceiling <= initial:
        return ceiling
    return initial + rng() * (ceiling - initial)


def next_attempt(
    failure: Failure,
    *,
    attempts: int,
    queued_at: float,
    now: float,
    policy: RetryPolicy,
    rng: Callable[[], float],
    retry_after: float | None = None,
) -> RetryDecision:
    """Decide what happens to an entry whose attempt did not finish it.

    `attempts` counts the real attempts so far, this one included; `queued_at` is when the entry's
    lifetime started; `retry_after` is a delay the transport asked for (seconds), if any.
    """
    wait = max(retry_after or 0.0, 0.0)
    if failure is Failure.NOT_ATTEMPTED:
        return RetryDecision(RetryVerdict.RETRY, now + wait, "throttled before sending")
    if failure is Failure.PERMANENT:
        return RetryDecision(RetryVerdict.DEAD, None, "refused permanently")
    deadline = queued_at + policy.lifetime.total_seconds()
    if now >= deadline:
        lifetime = format_duration(policy.lifetime)
        still = "throttled" if failure is Failure.THROTTLED else "failing"
        return RetryDecision(
            RetryVerdict.DEAD, None, f"still {still} after {lifetime} in the queue"
        )
    if failure is Failure.THROTTLED:
        return RetryDecision(RetryVerdict.RETRY, now + max(wait, THROTTLE_FLOOR), "throttled")
    at = min(now + backoff(attempts, policy, rng), deadline)
    return RetryDecision(RetryVerdict.RETRY, max(at, now + wait))
