"""From an attempt's result to the entry's next state (pure: values in, a `Settlement` out).

A transport reports per-recipient outcomes or raises for the whole attempt; each case resolves to a
`Resolution` (state, next attempt, counted or not, hold, last error) in one small function, and one
builder makes the `Settlement` the store writes. Deferred recipients defer the entry (and fail once
the lifetime is over), a held one holds it (fault); `PermanentFailure` is a dead letter at once;
`ConfigurationFault` holds without counting (a probe releases it), as does a transform the relay
cannot apply (for the operator); a throttle goes again exactly at its Retry-After without counting,
and one raised before anything was sent leaves no attempt row. The schedule itself is `retry.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    PermanentFailure,
    Throttled,
)
from mxrelay.delivery.retry import Failure, RetryDecision, RetryPolicy, RetryVerdict, next_attempt
from mxrelay.delivery.transport import DeliveryOutcome, RecipientOutcome, RecipientStatus
from mxrelay.model import AttemptOutcome, QueueState
from mxrelay.store.message_log import AttemptRecord, RecipientResult
from mxrelay.store.queue import HoldKind, LoadedEntry, QueueEntry, RecipientUpdate, Settlement

NO_RESULT = "no result reported"
MISSING = "the stored message is missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What is known about an attempt before its result."""

    entry: QueueEntry
    owner: str
    transport: str
    started_at: float
    policy: RetryPolicy
    rng: Callable[[], float]

    def next_attempt(
        self, failure: Failure, *, now: float, retry_after: timedelta | None
    ) -> RetryDecision:
        """`retry.next_attempt` for this entry, this attempt counted."""
        return next_attempt(
            failure,
            attempts=self.entry.attempts + 1,
            queued_at=self.entry.queued_at,
            now=now,
            policy=self.policy,
            rng=self.rng,
            retry_after=retry_after.total_seconds() if retry_after is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Hold:
    kind: HoldKind
    reason: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where an attempt leaves its entry, before the recipients and the attempt row are added."""

    state: QueueState
    next_at: float
    counted: bool
    """Whether the attempt counts (for the backoff and the entry's attempts)."""
    hold: Hold | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorResolution:
    """A whole attempt's error resolved: the entry's fate, and what every recipient gets."""

    resolution: Resolution
    status: RecipientStatus
    outcome: AttemptOutcome
    detail: str


# --- per-recipient outcomes ----------------------------------------------------------------------


def settle_outcome(
    attempt: Attempt,
    loaded: LoadedEntry,
    outcome: DeliveryOutcome,
    *,
    now: float,
    duration: float,
) -> Settlement:
    """The transport reached the remote side and reported per recipient."""
    reported = {r.recipient: r for r in outcome.recipients}
    results = tuple(
        reported.get(address) or RecipientOutcome(address, RecipientStatus.DEFERRED, text=NO_RESULT)
        for address in loaded.recipients
    )
    resolution, updates = _resolve_outcome(
        attempt, results, now=now, retry_after=outcome.retry_after
    )
    delivered = any(r.status is RecipientStatus.DELIVERED for r in results)
    problem = _first_problem(results)
    main = problem or next(iter(results), None)
    record = _record(
        attempt,
        _outcome_label(resolution.state, delivered=delivered),
        results,
        duration=duration,
        code=main.code if main else None,
        enhanced=main.enhanced if main else "",
        text=(main.text if main else "") or outcome.detail,
        remote_id=outcome.remote_id,
        http_status=outcome.http_status,
        error_code=outcome.error_code,
    )
    return _settlement(attempt, resolution, now=now, recipients=updates, record=record)


def _resolve_outcome(
    attempt: Attempt,
    results: tuple[RecipientOutcome, ...],
    *,
    now: float,
    retry_after: timedelta | None,
) -> tuple[Resolution, tuple[RecipientUpdate, ...]]:
    """Deferred recipients defer the entry (or fail once the lifetime is over); otherwise a held
    one holds it; otherwise it is done."""
    updates = tuple(_update(r, r.status, r.text) for r in results)
    problem = _first_problem(results)
    last_error = _describe(problem) if problem is not None else None
    statuses = {r.status for r in results}
    done = QueueState.DELIVERED if RecipientStatus.DELIVERED in statuses else QueueState.DEAD
    if RecipientStatus.DEFERRED in statuses:
        decision = attempt.next_attempt(Failure.TEMPORARY, now=now, retry_after=retry_after)
        if decision.verdict is RetryVerdict.RETRY and decision.at is not None:
            deferred = Resolution(QueueState.DEFERRED, decision.at, True, last_error=last_error)
            return deferred, updates
        expired = tuple(_expire(result, decision.reason) for result in results)
        return Resolution(done, now, True, last_error=f"{decision.reason}: {last_error}"), expired
    held = next((r for r in results if r.status is RecipientStatus.HELD), None)
    if held is not None:
        hold = Hold(HoldKind.FAULT, f"configuration fault: {_describe(held)}")
        return Resolution(QueueState.HELD, now, True, hold, last_error), updates
    return Resolution(done, now, True, last_error=last_error), updates


def _expire(result: RecipientOutcome, reason: str) -> RecipientUpdate:
    """A deferred recipient at the end of the lifetime fails, keeping its last reply."""
    if result.status is not RecipientStatus.DEFERRED:
        return _update(result, result.status, result.text)
    return _update(result, RecipientStatus.FAILED, f"{reason}; last reply: {result.text}")


def _outcome_label(state: QueueState, *, delivered: bool) -> AttemptOutcome:
    match state:
        case QueueState.DELIVERED:
            return AttemptOutcome.DELIVERED
        case QueueState.DEFERRED:
            return AttemptOutcome.PARTIAL if delivered else AttemptOutcome.DEFERRED
        case QueueState.HELD:
            return AttemptOutcome.HELD
        case _:
            return AttemptOutcome.FAILED


def _first_problem(results: tuple[RecipientOutcome, ...]) -> RecipientOutcome | None:
    return next((r for r in results if r.status is not RecipientStatus.DELIVERED), None)


def _describe(outcome: RecipientOutcome) -> str:
    parts = [str(outcome.code) if outcome.code else "", outcome.enhanced, outcome.text]
    return " ".join(p for p in parts if p) or outcome.status.value


def _update(result: RecipientOutcome, status: RecipientStatus, text: str) -> RecipientUpdate:
    return RecipientUpdate(
        address=result.recipient,
        state=status,
        code=result.code,
        enhanced=result.enhanced,
        text=text,
    )


# --- errors for the whole attempt ----------------------------------------------------------------


def settle_error(
    attempt: Attempt,
    loaded: LoadedEntry,
    error: DeliveryError | ValueError,
    *,
    now: float,
    duration: float,
) -> Settlement:
    """The whole attempt failed with `error` (no per-recipient results)."""
    if isinstance(error, Throttled) and not error.attempted:
        return _settlement(attempt, _not_attempted(attempt, error, now=now), now=now)
    resolved = _resolve_error(attempt, error, now=now)
    code, remote_id, error_code = (
        (error.code, error.remote_id, error.error_code)
        if isinstance(error, DeliveryError)
        else (None, None, None)
    )
    results = tuple(
        RecipientOutcome(address, resolved.status, code, "", resolved.detail)
        for address in loaded.recipients
    )
    record = _record(
        attempt,
        resolved.outcome,
        results,
        duration=duration,
        code=code,
        text=resolved.detail,
        remote_id=remote_id,
        error_code=error_code,
    )
    counted = resolved.resolution.counted
    updates = tuple(
        RecipientUpdate(
            address=r.recipient, state=r.status, code=r.code, text=r.text, counted=counted
        )
        for r in results
    )
    return _settlement(attempt, resolved.resolution, now=now, recipients=updates, record=record)


def _not_attempted(attempt: Attempt, error: Throttled, *, now: float) -> Resolution:
    """A throttle before anything was sent: back at its Retry-After, never a dead letter."""
    decision = attempt.next_attempt(Failure.NOT_ATTEMPTED, now=now, retry_after=error.retry_after)
    assert decision.at is not None  # never a dead letter
    return Resolution(
        QueueState.DEFERRED, decision.at, False, last_error=f"{decision.reason}: {error.detail}"
    )


def _resolve_error(
    attempt: Attempt, error: DeliveryError | ValueError, *, now: float
) -> ErrorResolution:
    """One small resolution per error class (a throttle before sending is `_not_attempted`)."""
    match error:
        case ConfigurationFault():
            return _held(HoldKind.FAULT, "configuration fault", error.detail, now=now)
        case ValueError():  # a stored transform this relay cannot apply
            return _held(HoldKind.OPERATOR, "cannot deliver", str(error), now=now)
        case PermanentFailure():
            return _refused(error.detail, now=now)
        case Throttled():
            return _retried(attempt, error.detail, error.retry_after, now=now)
        case _:
            return _retried(attempt, error.detail, None, now=now)


def _held(kind: HoldKind, why: str, detail: str, *, now: float) -> ErrorResolution:
    """Held without counting the attempt: a probe (fault) or the operator (the rest) releases it."""
    reason = f"{why}: {detail}"
    resolution = Resolution(QueueState.HELD, now, False, Hold(kind, reason), reason)
    return ErrorResolution(resolution, RecipientStatus.HELD, AttemptOutcome.HELD, detail)


def _refused(detail: str, *, now: float) -> ErrorResolution:
    resolution = Resolution(QueueState.DEAD, now, True, last_error=detail)
    return ErrorResolution(resolution, RecipientStatus.FAILED, AttemptOutcome.FAILED, detail)


def _retried(
    attempt: Attempt, detail: str, throttle: timedelta | None, *, now: float
) -> ErrorResolution:
    """Deferred with backoff, or to exactly the Retry-After of a throttle (`throttle`, which does
    not count); a dead letter once the lifetime is over."""
    throttled = throttle is not None
    failure = Failure.THROTTLED if throttled else Failure.TEMPORARY
    decision = attempt.next_attempt(failure, now=now, retry_after=throttle)
    if decision.verdict is RetryVerdict.RETRY and decision.at is not None:
        resolution = Resolution(QueueState.DEFERRED, decision.at, not throttled, last_error=detail)
        outcome = AttemptOutcome.THROTTLED if throttled else AttemptOutcome.DEFERRED
        return ErrorResolution(resolution, RecipientStatus.DEFERRED, outcome, detail)
    return _refused(f"{decision.reason}: {detail}", now=now)


# --- nothing to send -----------------------------------------------------------------------------


def settle_unloadable(attempt: Attempt, loaded: LoadedEntry | None, *, now: float) -> Settlement:
    """Nothing to send: the body is gone (dead letter) or no recipient is pending (done)."""
    if loaded is not None and loaded.data is not None and not loaded.recipients:
        return _settlement(attempt, Resolution(QueueState.DELIVERED, now, False), now=now)
    updates = tuple(
        RecipientUpdate(address=a, state=RecipientStatus.FAILED, text=MISSING)
        for a in (loaded.recipients if loaded is not None else ())
    )
    resolution = Resolution(QueueState.DEAD, now, False, last_error=MISSING)
    return _settlement(attempt, resolution, now=now, recipients=updates)


# --- the values the store writes -----------------------------------------------------------------


def _settlement(
    attempt: Attempt,
    resolution: Resolution,
    *,
    now: float,
    recipients: tuple[RecipientUpdate, ...] = (),
    record: AttemptRecord | None = None,
) -> Settlement:
    entry, hold = attempt.entry, resolution.hold
    return Settlement(
        entry=entry,
        owner=attempt.owner,
        state=resolution.state,
        next_attempt_at=resolution.next_at,
        attempts=entry.attempts + (1 if resolution.counted else 0),
        now=now,
        last_error=resolution.last_error,
        hold_kind=hold.kind if hold is not None else None,
        hold_reason=hold.reason if hold is not None else None,
        recipients=recipients,
        attempt=record,
    )


def _record(
    attempt: Attempt,
    outcome: AttemptOutcome,
    results: tuple[RecipientOutcome, ...],
    *,
    duration: float,
    code: int | None = None,
    enhanced: str = "",
    text: str = "",
    remote_id: str | None = None,
    http_status: int | None = None,
    error_code: str | None = None,
) -> AttemptRecord:
    return AttemptRecord(
        message_id=attempt.entry.message_id,
        variant=attempt.entry.variant,
        attempt=attempt.entry.attempts + 1,
        started_at=attempt.started_at,
        duration=duration,
        transport=attempt.transport,
        owner=attempt.owner,
        outcome=outcome,
        code=code,
        enhanced=enhanced,
        text=text,
        remote_id=remote_id,
        http_status=http_status,
        error_code=error_code,
        recipients=tuple(
            RecipientResult(r.recipient, r.status.value, r.code, r.enhanced, r.text)
            for r in results
        ),
    )
