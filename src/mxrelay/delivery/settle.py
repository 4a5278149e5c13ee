"""From an attempt's result to the entry's next state (pure: values in, a `Settlement` out).

A transport reports per-recipient outcomes, or raises for the whole attempt; this module decides:

- every recipient delivered or failed → the entry is done (`delivered`, or `dead` if none arrived);
- any recipient deferred → `deferred` at `retry.next_attempt()` (or `dead` once the lifetime is
  over; those recipients then fail with the reason);
- `PermanentFailure` → `dead` at once, never retried by a restart;
- `ConfigurationFault` → `held` (kind `fault`, released by a successful probe); no attempt counted;
- `Throttled` after an answer (Graph's 429, a 503 with Retry-After) → `deferred` to exactly the
  Retry-After, with an attempt row (outcome `throttled`) but not counted: the backoff of a later
  failure is as if the throttle had not happened; `dead` only once the lifetime is over;
- `Throttled` raised before anything was sent → `deferred` until its Retry-After, not counted, no
  attempt row; a reason is kept in `last_error` so `mxrelay queue list` shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from mxrelay.delivery.base import DeliveryOutcome, RecipientOutcome, RecipientStatus
from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    PermanentFailure,
    Throttled,
)
from mxrelay.delivery.retry import Failure, RetryDecision, RetryPolicy, Verdict, next_attempt
from mxrelay.store.message_log import AttemptRecord, RecipientResult
from mxrelay.store.queue import (
    HoldKind,
    LoadedEntry,
    QueueEntry,
    QueueState,
    RecipientUpdate,
    Settlement,
)


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


def _describe(outcome: RecipientOutcome) -> str:
    parts = [str(outcome.code) if outcome.code else "", outcome.enhanced, outcome.text]
    return " ".join(p for p in parts if p) or outcome.status.value


def _record(
    attempt: Attempt,
    outcome: str,
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
        reported.get(address)
        or RecipientOutcome(address, RecipientStatus.DEFERRED, text="no result reported")
        for address in loaded.recipients
    )
    by_status = {s: [r for r in results if r.status is s] for s in RecipientStatus}
    delivered = by_status[RecipientStatus.DELIVERED]
    deferred = by_status[RecipientStatus.DEFERRED]
    held = by_status[RecipientStatus.HELD]
    entry = attempt.entry
    attempts = entry.attempts + 1
    first_problem = next((r for r in results if r.status is not RecipientStatus.DELIVERED), None)
    last_error = _describe(first_problem) if first_problem is not None else None
    updates = [
        RecipientUpdate(
            address=r.recipient, state=r.status, code=r.code, enhanced=r.enhanced, text=r.text
        )
        for r in results
    ]
    state = QueueState.DELIVERED if delivered else QueueState.DEAD
    next_at = now
    hold_kind = hold_reason = None
    if deferred:
        decision = attempt.next_attempt(Failure.TEMPORARY, now=now, retry_after=outcome.retry_after)
        if decision.verdict is Verdict.RETRY and decision.at is not None:
            state, next_at = QueueState.DEFERRED, decision.at
        else:
            last_error = f"{decision.reason}: {last_error}"
            updates = [
                RecipientUpdate(
                    address=u.address,
                    state=RecipientStatus.FAILED,
                    code=u.code,
                    enhanced=u.enhanced,
                    text=f"{decision.reason}; last reply: {u.text}",
                )
                if u.state is RecipientStatus.DEFERRED
                else u
                for u in updates
            ]
            state = QueueState.DELIVERED if delivered else QueueState.DEAD
    elif held:
        state, hold_kind = QueueState.HELD, HoldKind.FAULT
        hold_reason = f"configuration fault: {_describe(held[0])}"
    label = _label(state, delivered=bool(delivered), total=len(results))
    main = first_problem if first_problem is not None else (delivered[0] if delivered else None)
    record = _record(
        attempt,
        label,
        results,
        duration=duration,
        code=main.code if main else None,
        enhanced=main.enhanced if main else "",
        text=(main.text if main else "") or outcome.detail,
        remote_id=outcome.remote_id,
        http_status=outcome.http_status,
        error_code=outcome.error_code,
    )
    return Settlement(
        entry=entry,
        owner=attempt.owner,
        state=state,
        next_attempt_at=next_at,
        attempts=attempts,
        now=now,
        last_error=last_error,
        hold_kind=hold_kind,
        hold_reason=hold_reason,
        recipients=tuple(updates),
        attempt=record,
    )


def _label(state: QueueState, *, delivered: bool, total: int) -> str:
    """The attempt's outcome (metric label and `attempts.outcome`)."""
    if state is QueueState.DELIVERED:
        return "delivered" if delivered and total else "partial"
    if state is QueueState.DEFERRED:
        return "partial" if delivered else "deferred"
    if state is QueueState.HELD:
        return "held"
    return "partial" if delivered else "failed"


def settle_error(
    attempt: Attempt,
    loaded: LoadedEntry,
    error: DeliveryError | ValueError,
    *,
    now: float,
    duration: float,
) -> Settlement:
    """The whole attempt failed with `error` (no per-recipient results)."""
    entry = attempt.entry
    detail = error.detail if isinstance(error, DeliveryError) else str(error)
    code = error.code if isinstance(error, DeliveryError) else None
    if isinstance(error, Throttled) and not error.attempted:
        decision = attempt.next_attempt(
            Failure.NOT_ATTEMPTED, now=now, retry_after=error.retry_after
        )
        assert decision.at is not None  # never a dead letter
        return Settlement(
            entry=entry,
            owner=attempt.owner,
            state=QueueState.DEFERRED,
            next_attempt_at=decision.at,
            attempts=entry.attempts,
            now=now,
            last_error=f"{decision.reason}: {detail}",
        )
    throttled = isinstance(error, Throttled)
    if isinstance(error, ConfigurationFault | ValueError):
        status, state, counted = RecipientStatus.HELD, QueueState.HELD, False
        kind = HoldKind.FAULT if isinstance(error, ConfigurationFault) else HoldKind.OPERATOR
        reason = (
            "configuration fault: " if kind is HoldKind.FAULT else "cannot deliver: "
        ) + detail
        next_at, last_error = now, reason
    elif isinstance(error, PermanentFailure):
        status, state, counted, kind, reason = (
            RecipientStatus.FAILED,
            QueueState.DEAD,
            True,
            None,
            None,
        )
        next_at, last_error = now, detail
    else:
        decision = attempt.next_attempt(
            Failure.THROTTLED if throttled else Failure.TEMPORARY,
            now=now,
            retry_after=error.retry_after if isinstance(error, Throttled) else None,
        )
        kind = reason = None
        counted = True
        if decision.verdict is Verdict.RETRY and decision.at is not None:
            status, state, next_at, last_error = (
                RecipientStatus.DEFERRED,
                QueueState.DEFERRED,
                decision.at,
                detail,
            )
            counted = not throttled  # a throttle is not a failed attempt
        else:
            status, state, next_at = RecipientStatus.FAILED, QueueState.DEAD, now
            last_error = detail = f"{decision.reason}: {detail}"
    enhanced = ""
    results = tuple(
        RecipientOutcome(address, status, code, enhanced, detail) for address in loaded.recipients
    )
    label = {
        QueueState.DEFERRED: "throttled" if throttled else "deferred",
        QueueState.DEAD: "failed",
        QueueState.HELD: "held",
    }[state]
    record = _record(
        attempt,
        label,
        results,
        duration=duration,
        code=code,
        text=detail,
        remote_id=error.remote_id if isinstance(error, DeliveryError) else None,
        error_code=error.error_code if isinstance(error, DeliveryError) else None,
    )
    return Settlement(
        entry=entry,
        owner=attempt.owner,
        state=state,
        next_attempt_at=next_at,
        attempts=entry.attempts + (1 if counted else 0),
        now=now,
        last_error=last_error,
        hold_kind=kind,
        hold_reason=reason,
        recipients=tuple(
            RecipientUpdate(
                address=r.recipient, state=r.status, code=code, text=detail, counted=counted
            )
            for r in results
        ),
        attempt=record,
    )


def settle_unloadable(attempt: Attempt, loaded: LoadedEntry | None, *, now: float) -> Settlement:
    """Nothing to send: the body is gone (dead letter) or no recipient is pending (done)."""
    entry = attempt.entry
    if loaded is not None and loaded.data is not None and not loaded.recipients:
        return Settlement(
            entry=entry,
            owner=attempt.owner,
            state=QueueState.DELIVERED,
            next_attempt_at=now,
            attempts=entry.attempts,
            now=now,
        )
    reason = "the stored message is missing"
    return Settlement(
        entry=entry,
        owner=attempt.owner,
        state=QueueState.DEAD,
        next_attempt_at=now,
        attempts=entry.attempts,
        now=now,
        last_error=reason,
        recipients=tuple(
            RecipientUpdate(address=a, state=RecipientStatus.FAILED, text=reason)
            for a in (loaded.recipients if loaded is not None else ())
        ),
    )
