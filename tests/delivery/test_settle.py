"""From an attempt's result to the entry's next state: one table row per outcome and error class.

Every case compares the whole `Settlement` (state, times, counted attempts, hold, recipients and
the attempt row), so a refactoring of `settle.py` keeps exactly what the store is told.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
    ThrottledBeforeSending,
    UpstreamUnavailable,
)
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.settle import Attempt, settle_error, settle_outcome, settle_unloadable
from mxrelay.delivery.transport import DeliveryOutcome, RecipientOutcome, RecipientStatus
from mxrelay.mime.pipeline import UnknownTransform
from mxrelay.model import QueueState
from mxrelay.store.message_log import AttemptRecord, RecipientResult
from mxrelay.store.queue import LoadedEntry, QueueEntry, RecipientUpdate, Settlement

NOW = 1_800_000_000.0
STARTED = NOW - 2.0
QUEUED = NOW - 3600.0
DURATION = 0.25
LIFETIME = timedelta(days=5)
POLICY = RetryPolicy(timedelta(minutes=1), timedelta(hours=1), LIFETIME)
EXPIRED = NOW - LIFETIME.total_seconds()  # queued so long ago that the lifetime is over
OWNER = "relay-1:42:abc"
ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"

Status = RecipientStatus


def entry(*, attempts: int = 0, queued_at: float = QUEUED) -> QueueEntry:
    return QueueEntry(
        id=7,
        message_id="01JMESSAGE",
        variant=1,
        state=QueueState.ACTIVE,
        created_at=queued_at,
        queued_at=queued_at,
        next_attempt_at=queued_at,
        attempts=attempts,
        lease_owner=OWNER,
        lease_expires_at=NOW + 60,
    )


def attempt_for(queued: QueueEntry, rng: Callable[[], float] = lambda: 0.0) -> Attempt:
    return Attempt(
        entry=queued, owner=OWNER, transport="smtp", started_at=STARTED, policy=POLICY, rng=rng
    )


def loaded_for(
    queued: QueueEntry, recipients: tuple[str, ...] = (ALICE, BOB), data: bytes | None = b"x"
) -> LoadedEntry:
    return LoadedEntry(
        entry=queued,
        mail_from="app@example.net",
        smtputf8=False,
        received_header="",
        data=data,
        transforms=(),
        recipients=recipients,
    )


def results(
    *items: tuple[str, RecipientStatus, int | None, str, str],
) -> tuple[RecipientResult, ...]:
    return tuple(
        RecipientResult(a, s.value, code, enhanced, text) for a, s, code, enhanced, text in items
    )


def record(
    queued: QueueEntry, outcome: str, recipients: tuple[RecipientResult, ...], **fields: object
) -> AttemptRecord:
    values: dict[str, object] = {
        "message_id": queued.message_id,
        "variant": queued.variant,
        "attempt": queued.attempts + 1,
        "started_at": STARTED,
        "duration": DURATION,
        "transport": "smtp",
        "owner": OWNER,
        "outcome": outcome,
        "recipients": recipients,
        **fields,
    }
    return AttemptRecord(**values)  # type: ignore[arg-type]


def update(address: str, state: str, code: int | None = None, enhanced: str = "", text: str = "",
           *, counted: bool = True) -> RecipientUpdate:  # fmt: skip
    return RecipientUpdate(
        address=address,
        state=RecipientStatus(state),
        code=code,
        enhanced=enhanced,
        text=text,
        counted=counted,
    )


def settlement(queued: QueueEntry, **fields: object) -> Settlement:
    values: dict[str, object] = {"entry": queued, "owner": OWNER, "now": NOW, **fields}
    return Settlement(**values)  # type: ignore[arg-type]


def outcome_of(*recipients: RecipientOutcome, **fields: object) -> DeliveryOutcome:
    return DeliveryOutcome(recipients, **fields)  # type: ignore[arg-type]


def settled(
    queued: QueueEntry,
    outcome: DeliveryOutcome,
    recipients: tuple[str, ...] = (ALICE, BOB),
    rng: Callable[[], float] = lambda: 0.0,
) -> Settlement:
    return settle_outcome(
        attempt_for(queued, rng), loaded_for(queued, recipients), outcome, now=NOW,
        duration=DURATION,
    )  # fmt: skip


def failed(
    queued: QueueEntry,
    error: DeliveryError | ValueError,
    recipients: tuple[str, ...] = (ALICE, BOB),
) -> Settlement:
    loaded = loaded_for(queued, recipients)
    return settle_error(attempt_for(queued), loaded, error, now=NOW, duration=DURATION)


# --- per-recipient outcomes --------------------------------------------------------------------

OK = (250, "2.0.0", "ok: queued as ABC")


def test_every_recipient_delivered_is_done() -> None:
    queued = entry()
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DELIVERED, *OK),
        RecipientOutcome(BOB, Status.DELIVERED, *OK),
        remote_id="ABC",
        detail="accepted",
        http_status=202,
        error_code="none",
    )
    assert settled(queued, outcome) == settlement(
        queued,
        state=QueueState.DELIVERED,
        next_attempt_at=NOW,
        attempts=1,
        recipients=(update(ALICE, "delivered", *OK), update(BOB, "delivered", *OK)),
        attempt=record(
            queued,
            "delivered",
            results((ALICE, Status.DELIVERED, *OK), (BOB, Status.DELIVERED, *OK)),
            code=250,
            enhanced="2.0.0",
            text="ok: queued as ABC",
            remote_id="ABC",
            http_status=202,
            error_code="none",
        ),
    )


def test_the_transport_detail_stands_in_for_a_missing_reply_text() -> None:
    queued = entry()
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DELIVERED), RecipientOutcome(BOB, Status.DELIVERED),
        detail="accepted by Microsoft Graph",
    )  # fmt: skip
    got = settled(queued, outcome)
    assert got.attempt is not None
    assert (got.attempt.code, got.attempt.text) == (None, "accepted by Microsoft Graph")
    assert got.last_error is None


def test_some_delivered_and_some_refused_is_done() -> None:
    queued = entry(attempts=2)
    refused = (550, "5.1.1", "no such user")
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DELIVERED, *OK),
        RecipientOutcome(BOB, Status.FAILED, *refused),
    )
    assert settled(queued, outcome) == settlement(
        queued,
        state=QueueState.DELIVERED,
        next_attempt_at=NOW,
        attempts=3,
        last_error="550 5.1.1 no such user",
        recipients=(update(ALICE, "delivered", *OK), update(BOB, "failed", *refused)),
        attempt=record(
            queued,
            "delivered",  # done: the outcome names what the entry became
            results((ALICE, Status.DELIVERED, *OK), (BOB, Status.FAILED, *refused)),
            code=550,
            enhanced="5.1.1",
            text="no such user",
        ),
    )


def test_every_recipient_refused_is_a_dead_letter() -> None:
    queued = entry()
    refused = (550, "5.1.1", "no such user")
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.FAILED, *refused),
        RecipientOutcome(BOB, Status.FAILED, 554, "", ""),
    )
    assert settled(queued, outcome) == settlement(
        queued,
        state=QueueState.DEAD,
        next_attempt_at=NOW,
        attempts=1,
        last_error="550 5.1.1 no such user",
        recipients=(update(ALICE, "failed", *refused), update(BOB, "failed", 554)),
        attempt=record(
            queued,
            "failed",
            results((ALICE, Status.FAILED, *refused), (BOB, Status.FAILED, 554, "", "")),
            code=550,
            enhanced="5.1.1",
            text="no such user",
        ),
    )


def test_a_deferred_recipient_defers_the_entry_with_backoff() -> None:
    queued = entry()
    later = (451, "4.3.0", "try later")
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DELIVERED, *OK),
        RecipientOutcome(BOB, Status.DEFERRED, *later),
    )
    assert settled(queued, outcome) == settlement(
        queued,
        state=QueueState.DEFERRED,
        next_attempt_at=NOW + 60,  # the initial backoff (rng 0)
        attempts=1,
        last_error="451 4.3.0 try later",
        recipients=(update(ALICE, "delivered", *OK), update(BOB, "deferred", *later)),
        attempt=record(
            queued,
            "partial",
            results((ALICE, Status.DELIVERED, *OK), (BOB, Status.DEFERRED, *later)),
            code=451,
            enhanced="4.3.0",
            text="try later",
        ),
    )


def test_all_deferred_is_deferred_and_the_backoff_grows_with_the_attempts() -> None:
    queued = entry(attempts=2)
    later = (421, "4.4.2", "closing")
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DEFERRED, *later),
        RecipientOutcome(BOB, Status.DEFERRED, *later),
    )
    got = settled(queued, outcome, rng=lambda: 0.5)
    assert got == settlement(
        queued,
        state=QueueState.DEFERRED,
        next_attempt_at=NOW + 60 + 0.5 * (240 - 60),  # third attempt: ceiling 4 minutes
        attempts=3,
        last_error="421 4.4.2 closing",
        recipients=(update(ALICE, "deferred", *later), update(BOB, "deferred", *later)),
        attempt=record(
            queued,
            "deferred",
            results((ALICE, Status.DEFERRED, *later), (BOB, Status.DEFERRED, *later)),
            code=421,
            enhanced="4.4.2",
            text="closing",
        ),
    )


def test_a_deferral_waits_at_least_the_retry_after_the_transport_reports() -> None:
    queued = entry()
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DEFERRED, 451), RecipientOutcome(BOB, Status.DEFERRED, 451),
        retry_after=timedelta(minutes=10),
    )  # fmt: skip
    assert settled(queued, outcome).next_attempt_at == NOW + 600


def test_a_recipient_without_a_result_is_deferred() -> None:
    queued = entry()
    outcome = outcome_of(RecipientOutcome(ALICE, Status.DELIVERED, *OK))
    got = settled(queued, outcome)
    assert got.state is QueueState.DEFERRED
    assert got.last_error == "no result reported"
    assert got.recipients[1] == update(BOB, "deferred", text="no result reported")
    assert got.attempt is not None
    assert got.attempt.outcome == "partial"
    assert got.attempt.recipients[1] == RecipientResult(
        BOB, "deferred", None, "", "no result reported"
    )


def test_a_problem_without_any_reply_is_described_by_its_status() -> None:
    queued = entry()
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.FAILED), RecipientOutcome(BOB, Status.FAILED)
    )
    assert settled(queued, outcome).last_error == "failed"


def test_deferred_recipients_fail_once_the_lifetime_is_over() -> None:
    queued = entry(attempts=9, queued_at=EXPIRED)
    later = (451, "4.3.0", "try later")
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DELIVERED, *OK),
        RecipientOutcome(BOB, Status.DEFERRED, *later),
    )
    reason = "still failing after 5d in the queue"
    assert settled(queued, outcome) == settlement(
        queued,
        state=QueueState.DELIVERED,
        next_attempt_at=NOW,
        attempts=10,
        last_error=f"{reason}: 451 4.3.0 try later",
        recipients=(
            update(ALICE, "delivered", *OK),
            update(BOB, "failed", 451, "4.3.0", f"{reason}; last reply: try later"),
        ),
        attempt=record(
            queued,
            "delivered",
            results((ALICE, Status.DELIVERED, *OK), (BOB, Status.DEFERRED, *later)),
            code=451,
            enhanced="4.3.0",
            text="try later",
        ),
    )


def test_all_deferred_past_the_lifetime_is_a_dead_letter() -> None:
    queued = entry(attempts=9, queued_at=EXPIRED)
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DEFERRED, 451, "", "busy"),
        RecipientOutcome(BOB, Status.DEFERRED, 451, "", "busy"),
    )
    got = settled(queued, outcome)
    reason = "still failing after 5d in the queue"
    assert (got.state, got.next_attempt_at, got.attempts) == (QueueState.DEAD, NOW, 10)
    assert got.last_error == f"{reason}: 451 busy"
    assert got.recipients == (
        update(ALICE, "failed", 451, text=f"{reason}; last reply: busy"),
        update(BOB, "failed", 451, text=f"{reason}; last reply: busy"),
    )
    assert got.attempt is not None
    assert got.attempt.outcome == "failed"


def test_a_held_recipient_holds_the_entry_as_a_configuration_fault() -> None:
    queued = entry(attempts=1)
    fault = (None, "", "the mailbox is outside the app's scope")
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.DELIVERED, *OK),
        RecipientOutcome(BOB, Status.HELD, *fault),
    )
    assert settled(queued, outcome) == settlement(
        queued,
        state=QueueState.HELD,
        next_attempt_at=NOW,
        attempts=2,
        last_error="the mailbox is outside the app's scope",
        hold_kind="fault",
        hold_reason="configuration fault: the mailbox is outside the app's scope",
        recipients=(update(ALICE, "delivered", *OK), update(BOB, "held", *fault)),
        attempt=record(
            queued,
            "held",
            results((ALICE, Status.DELIVERED, *OK), (BOB, Status.HELD, *fault)),
            text="the mailbox is outside the app's scope",
        ),
    )


def test_a_deferred_recipient_beats_a_held_one() -> None:
    queued = entry()
    outcome = outcome_of(
        RecipientOutcome(ALICE, Status.HELD, text="fault"),
        RecipientOutcome(BOB, Status.DEFERRED, 451, text="later"),
    )
    got = settled(queued, outcome)
    assert (got.state, got.next_attempt_at, got.hold_kind) == (QueueState.DEFERRED, NOW + 60, None)
    assert got.last_error == "fault"
    assert [u.state for u in got.recipients] == ["held", "deferred"]
    assert got.attempt is not None
    assert got.attempt.outcome == "deferred"


def test_only_the_recipients_still_pending_are_settled() -> None:
    queued = entry()
    outcome = outcome_of(
        RecipientOutcome(CAROL, Status.DELIVERED, *OK),  # not pending: ignored
        RecipientOutcome(ALICE, Status.DELIVERED, *OK),
    )
    got = settled(queued, outcome, recipients=(ALICE,))
    assert got.state is QueueState.DELIVERED
    assert got.recipients == (update(ALICE, "delivered", *OK),)


# --- errors for the whole attempt ----------------------------------------------------------------


def test_a_throttle_before_sending_is_not_an_attempt() -> None:
    queued = entry(attempts=3)
    error = ThrottledBeforeSending("paced: at the messages limit", retry_after=timedelta(seconds=2))
    assert failed(queued, error) == settlement(
        queued,
        state=QueueState.DEFERRED,
        next_attempt_at=NOW + 2,
        attempts=3,
        last_error="throttled before sending: paced: at the messages limit",
    )


def test_a_throttle_before_sending_never_kills_mail() -> None:
    queued = entry(attempts=3, queued_at=EXPIRED - 100)
    error = ThrottledBeforeSending("paced", retry_after=timedelta(seconds=0))
    got = failed(queued, error)
    assert (got.state, got.next_attempt_at, got.attempts) == (QueueState.DEFERRED, NOW, 3)


def test_a_throttle_goes_again_when_asked_and_does_not_count() -> None:
    queued = entry(attempts=2)
    error = Throttled(
        "Graph asked to slow down (429 ApplicationThrottled)",
        retry_after=timedelta(seconds=30),
        code=429,
        error_code="ApplicationThrottled",
        remote_id="req-1",
    )
    detail = "Graph asked to slow down (429 ApplicationThrottled)"
    assert failed(queued, error) == settlement(
        queued,
        state=QueueState.DEFERRED,
        next_attempt_at=NOW + 30,
        attempts=2,
        last_error=detail,
        recipients=(
            update(ALICE, "deferred", 429, text=detail, counted=False),
            update(BOB, "deferred", 429, text=detail, counted=False),
        ),
        attempt=record(
            queued,
            "throttled",
            results(
                (ALICE, Status.DEFERRED, 429, "", detail), (BOB, Status.DEFERRED, 429, "", detail)
            ),
            code=429,
            text=detail,
            remote_id="req-1",
            error_code="ApplicationThrottled",
        ),
    )


def test_a_throttle_of_no_time_still_waits_the_floor() -> None:
    got = failed(entry(), Throttled("429", retry_after=timedelta(0)))
    assert got.next_attempt_at == NOW + 1.0


def test_a_throttle_past_the_lifetime_is_a_dead_letter_and_counts() -> None:
    queued = entry(attempts=4, queued_at=EXPIRED)
    error = Throttled("slow down", retry_after=timedelta(seconds=30), code=429)
    detail = "still throttled after 5d in the queue: slow down"
    assert failed(queued, error) == settlement(
        queued,
        state=QueueState.DEAD,
        next_attempt_at=NOW,
        attempts=5,
        last_error=detail,
        recipients=(
            update(ALICE, "failed", 429, text=detail),
            update(BOB, "failed", 429, text=detail),
        ),
        attempt=record(
            queued,
            "failed",
            results((ALICE, Status.FAILED, 429, "", detail), (BOB, Status.FAILED, 429, "", detail)),
            code=429,
            text=detail,
        ),
    )


@pytest.mark.parametrize(
    "error",
    [
        TemporaryFailure("451 4.3.0 later", code=451),
        UpstreamUnavailable("451 4.3.0 later", code=451),
    ],
    ids=["temporary", "unavailable"],
)
def test_a_temporary_failure_backs_off_and_counts(error: DeliveryError) -> None:
    queued = entry(attempts=1)
    detail = "451 4.3.0 later"
    assert failed(queued, error) == settlement(
        queued,
        state=QueueState.DEFERRED,
        next_attempt_at=NOW + 60,  # second attempt, rng 0: the initial delay
        attempts=2,
        last_error=detail,
        recipients=(
            update(ALICE, "deferred", 451, text=detail),
            update(BOB, "deferred", 451, text=detail),
        ),
        attempt=record(
            queued,
            "deferred",
            results(
                (ALICE, Status.DEFERRED, 451, "", detail), (BOB, Status.DEFERRED, 451, "", detail)
            ),
            code=451,
            text=detail,
        ),
    )


def test_a_temporary_failure_past_the_lifetime_is_a_dead_letter() -> None:
    queued = entry(attempts=30, queued_at=EXPIRED)
    got = failed(queued, UpstreamUnavailable("connection refused"))
    detail = "still failing after 5d in the queue: connection refused"
    assert (got.state, got.next_attempt_at, got.attempts) == (QueueState.DEAD, NOW, 31)
    assert got.last_error == detail
    assert got.recipients == (
        update(ALICE, "failed", text=detail),
        update(BOB, "failed", text=detail),
    )
    assert got.attempt is not None
    assert (got.attempt.outcome, got.attempt.text) == ("failed", detail)


def test_the_last_retry_is_at_the_end_of_the_lifetime() -> None:
    queued = entry(attempts=20, queued_at=EXPIRED + 30)
    got = failed(queued, TemporaryFailure("later"))
    assert (got.state, got.next_attempt_at) == (QueueState.DEFERRED, NOW + 30)


def test_a_permanent_failure_is_a_dead_letter_at_once() -> None:
    queued = entry()
    error = PermanentFailure("550 5.7.1 relaying denied", code=550, remote_id="R1", error_code="X")
    detail = "550 5.7.1 relaying denied"
    assert failed(queued, error) == settlement(
        queued,
        state=QueueState.DEAD,
        next_attempt_at=NOW,
        attempts=1,
        last_error=detail,
        recipients=(
            update(ALICE, "failed", 550, text=detail),
            update(BOB, "failed", 550, text=detail),
        ),
        attempt=record(
            queued,
            "failed",
            results((ALICE, Status.FAILED, 550, "", detail), (BOB, Status.FAILED, 550, "", detail)),
            code=550,
            text=detail,
            remote_id="R1",
            error_code="X",
        ),
    )


def test_a_configuration_fault_holds_without_counting() -> None:
    queued = entry(attempts=2)
    error = ConfigurationFault(
        "token refused: invalid_client", code=401, error_code="AADSTS7000215"
    )
    detail = "token refused: invalid_client"
    assert failed(queued, error) == settlement(
        queued,
        state=QueueState.HELD,
        next_attempt_at=NOW,
        attempts=2,
        last_error=f"configuration fault: {detail}",
        hold_kind="fault",
        hold_reason=f"configuration fault: {detail}",
        recipients=(
            update(ALICE, "held", 401, text=detail, counted=False),
            update(BOB, "held", 401, text=detail, counted=False),
        ),
        attempt=record(
            queued,
            "held",
            results((ALICE, Status.HELD, 401, "", detail), (BOB, Status.HELD, 401, "", detail)),
            code=401,
            text=detail,
            error_code="AADSTS7000215",
        ),
    )


def test_a_message_that_cannot_be_rebuilt_is_held_for_the_operator() -> None:
    queued = entry(attempts=1)
    error = UnknownTransform("unknown transform 'rot13'")
    detail = "unknown transform 'rot13'"
    assert failed(queued, error, recipients=(ALICE,)) == settlement(
        queued,
        state=QueueState.HELD,
        next_attempt_at=NOW,
        attempts=1,
        last_error=f"cannot deliver: {detail}",
        hold_kind="operator",
        hold_reason=f"cannot deliver: {detail}",
        recipients=(update(ALICE, "held", text=detail, counted=False),),
        attempt=record(
            queued, "held", results((ALICE, Status.HELD, None, "", detail)), text=detail
        ),
    )


@given(
    attempts=st.integers(0, 50),
    age=st.floats(0, 10 * 86400),
    kind=st.sampled_from(["temporary", "throttled", "before", "permanent", "fault"]),
)
def test_attempts_never_go_down_and_grow_by_at_most_one(
    attempts: int, age: float, kind: str
) -> None:
    queued = entry(attempts=attempts, queued_at=NOW - age)
    wait = timedelta(seconds=5)
    error: DeliveryError = {
        "temporary": TemporaryFailure("t"),
        "throttled": Throttled("t", retry_after=wait),
        "before": ThrottledBeforeSending("t", retry_after=wait),
        "permanent": PermanentFailure("p"),
        "fault": ConfigurationFault("f"),
    }[kind]
    got = failed(queued, error)
    assert attempts <= got.attempts <= attempts + 1
    assert got.next_attempt_at >= NOW
    if got.state is QueueState.DEFERRED:
        assert got.next_attempt_at <= NOW + POLICY.maximum.total_seconds()


# --- nothing to send -------------------------------------------------------------------------------


def test_an_entry_with_no_recipient_pending_is_done() -> None:
    queued = entry(attempts=2)
    got = settle_unloadable(attempt_for(queued), loaded_for(queued, recipients=()), now=NOW)
    assert got == settlement(queued, state=QueueState.DELIVERED, next_attempt_at=NOW, attempts=2)


def test_a_missing_body_is_a_dead_letter_for_its_pending_recipients() -> None:
    queued = entry(attempts=2)
    loaded = loaded_for(queued, recipients=(ALICE, BOB), data=None)
    reason = "the stored message is missing"
    assert settle_unloadable(attempt_for(queued), loaded, now=NOW) == settlement(
        queued,
        state=QueueState.DEAD,
        next_attempt_at=NOW,
        attempts=2,
        last_error=reason,
        recipients=(update(ALICE, "failed", text=reason), update(BOB, "failed", text=reason)),
    )


@pytest.mark.parametrize("loaded", [None, "no recipients"])
def test_a_missing_entry_is_a_dead_letter(loaded: str | None) -> None:
    queued = entry()
    found = loaded_for(queued, recipients=(), data=None) if loaded else None
    assert settle_unloadable(attempt_for(queued), found, now=NOW) == settlement(
        queued,
        state=QueueState.DEAD,
        next_attempt_at=NOW,
        attempts=0,
        last_error="the stored message is missing",
    )
