"""The error table as data: every row reached and its neighbours not, its words, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
    UpstreamUnavailable,
)
from mxrelay.delivery.graph.outcome import (
    CONFIGURATION_FAULTS,
    DEFAULT_THROTTLE,
    MAX_RETRY_AFTER,
    ROWS,
    Classification,
    GraphAnswer,
    GraphVerdict,
    Row,
    classify,
    parse_error_body,
    parse_retry_after,
    to_error,
)
from mxrelay.metrics import Metrics
from mxrelay.model import GraphFault

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
STATUSES = range(100, 1000)
WAIT = timedelta(seconds=3)


def first_row(answer: GraphAnswer, fixed_mailbox: bool) -> Row:
    return next(row for row in ROWS if row.matches(answer, fixed_mailbox=fixed_mailbox))


def reaching(row: Row) -> GraphAnswer:
    """An answer built from the row's own conditions that this row is the first to match."""
    for status in sorted(row.status if row.status is not None else STATUSES):
        answer = GraphAnswer(status, row.code, "Said.", "req-1", WAIT if row.retry_after else None)
        if first_row(answer, row.fixed_mailbox) is row:
            return answer
    raise AssertionError(f"no answer reaches {row} (an earlier row covers it)")


def near_misses(row: Row) -> list[tuple[GraphAnswer, bool]]:
    """Answers one condition away from the row's, which it must not match."""
    answer = reaching(row)
    misses = []
    if row.retry_after:
        misses.append((GraphAnswer(answer.status, answer.error_code), row.fixed_mailbox))
    if row.fixed_mailbox:
        misses.append((answer, False))
    if row.code is not None:
        misses.append((GraphAnswer(answer.status, "ErrorSomethingElse", retry_after=WAIT), True))
    if row.status is not None:
        outside = [s for s in STATUSES if s not in row.status]
        below = [s for s in outside if s < min(row.status)][-1:]
        above = [s for s in outside if s > max(row.status)][:1]
        misses += [(GraphAnswer(s, row.code, retry_after=WAIT), True) for s in below + above]
    return misses


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.verdict}-{row.code or row.status}")
def test_every_row_is_reached_and_classifies_in_its_own_words(row: Row) -> None:
    answer = reaching(row)
    got = classify(answer, fixed_mailbox=row.fixed_mailbox)
    assert got == Classification(row.verdict, got.detail, row.fault)
    assert got == row.classification(answer)
    assert "{" not in got.detail  # every placeholder filled


@pytest.mark.parametrize(
    ("row", "answer", "fixed"),
    [(row, answer, fixed) for row in ROWS for answer, fixed in near_misses(row)],
    ids=lambda value: f"{value.verdict}-{value.code or value.status}" if isinstance(value, Row)
    else str(value.status) if isinstance(value, GraphAnswer) else str(value),
)  # fmt: skip
def test_no_row_matches_an_answer_outside_its_conditions(
    row: Row, answer: GraphAnswer, fixed: bool
) -> None:
    assert not row.matches(answer, fixed_mailbox=fixed)


def test_the_last_row_takes_every_other_answer() -> None:
    last = ROWS[-1]
    assert (last.status, last.code, last.retry_after, last.fixed_mailbox) == (
        None,
        None,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "verdict"),
    [
        (202, None, None, GraphVerdict.DELIVERED),
        (400, "ErrorMimeContentInvalidBase64String", None, GraphVerdict.PERMANENT),
        (400, "ErrorInvalidRecipients", None, GraphVerdict.PERMANENT),
        (400, "ErrorMessageSizeExceeded", None, GraphVerdict.PERMANENT),
        (413, None, None, GraphVerdict.PERMANENT),
        (401, "InvalidAuthenticationToken", None, GraphVerdict.REFRESH_TOKEN),
        (403, "ErrorAccessDenied", None, GraphVerdict.CONFIGURATION),
        (403, "ErrorSendAsDenied", None, GraphVerdict.PERMANENT),
        (429, "ApplicationThrottled", timedelta(seconds=5), GraphVerdict.THROTTLED),
        (429, None, None, GraphVerdict.THROTTLED),
        (500, None, None, GraphVerdict.TEMPORARY),
        (502, None, None, GraphVerdict.TEMPORARY),
        (503, None, None, GraphVerdict.TEMPORARY),
        (503, None, timedelta(seconds=3), GraphVerdict.THROTTLED),
        (504, None, timedelta(seconds=3), GraphVerdict.THROTTLED),
        (408, None, None, GraphVerdict.TEMPORARY),
        (404, "ErrorInvalidUser", None, GraphVerdict.PERMANENT),
        (422, None, None, GraphVerdict.PERMANENT),
    ],
)
def test_error_table(
    status: int, code: str | None, retry_after: timedelta | None, verdict: GraphVerdict
) -> None:
    answer = GraphAnswer(status, code, "", "req-1", retry_after)
    assert classify(answer, fixed_mailbox=False).verdict is verdict


def test_unknown_fixed_mailbox_is_configuration() -> None:
    result = classify(GraphAnswer(404, "ErrorInvalidUser"), fixed_mailbox=True)
    assert result.verdict is GraphVerdict.CONFIGURATION
    assert result.fault is GraphFault.MAILBOX


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (GraphAnswer(429, retry_after=timedelta(seconds=9)), Throttled),
        (GraphAnswer(400, "ErrorInvalidRecipients"), PermanentFailure),
        (GraphAnswer(403, "ErrorAccessDenied"), ConfigurationFault),
        (GraphAnswer(401, "InvalidAuthenticationToken"), ConfigurationFault),
        (GraphAnswer(503), UpstreamUnavailable),
        (GraphAnswer(409), TemporaryFailure),
    ],
)
def test_errors_carry_status_code_and_request_id(
    answer: GraphAnswer, error: type[DeliveryError]
) -> None:
    answer = GraphAnswer(answer.status, answer.error_code, "", "req-42", answer.retry_after)
    raised = to_error(classify(answer, fixed_mailbox=False), answer)
    assert isinstance(raised, error)
    assert raised.code == answer.status
    assert raised.error_code == answer.error_code
    assert raised.remote_id == "req-42"


def test_throttled_without_retry_after_waits_the_default() -> None:
    answer = GraphAnswer(429)
    error = to_error(classify(answer, fixed_mailbox=False), answer)
    assert isinstance(error, Throttled)
    assert error.retry_after == DEFAULT_THROTTLE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        (" 7 ", timedelta(seconds=7)),
        ("2.5", timedelta(seconds=2.5)),
        ("0", timedelta(0)),
        ("Fri, 27 Nov 2026 12:01:30 GMT", timedelta(seconds=90)),
        ("Friday, 27-Nov-26 12:00:10 GMT", timedelta(seconds=10)),  # RFC 850 form
        ("Fri Nov 27 12:00:20 2026", timedelta(seconds=20)),  # asctime form
        ("Fri, 27 Nov 2026 11:00:00 GMT", timedelta(0)),  # in the past: now
        ("999999999", MAX_RETRY_AFTER),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@given(st.integers(0, 86400))
def test_retry_after_date_and_seconds_agree(seconds: int) -> None:
    date = format_datetime(NOW + timedelta(seconds=seconds), usegmt=True)
    assert parse_retry_after(date, NOW) == parse_retry_after(str(seconds), NOW)


@given(st.text(max_size=40))
def test_retry_after_never_raises_and_is_never_negative(value: str) -> None:
    delay = parse_retry_after(value, NOW)
    assert delay is None or timedelta(0) <= delay <= MAX_RETRY_AFTER


def test_error_body_parsing_is_tolerant() -> None:
    body = b'{"error": {"code": "ErrorAccessDenied", "message": "Access is\\n denied."}}'
    assert parse_error_body(body) == ("ErrorAccessDenied", "Access is denied.")
    assert parse_error_body(b"<html>oops</html>") == (None, "")
    assert parse_error_body(b'{"error": "x"}') == (None, "")
    assert parse_error_body(b"[]") == (None, "")


def test_fault_labels_match_the_metric_labels() -> None:
    assert Metrics.graph_configuration_fault.values("fault") == CONFIGURATION_FAULTS


SAID = " (Graph: Something happened.)"
ACCESS = (
    "the app lacks the Mail.Send application permission with admin consent, or the sending "
    "mailbox is outside the app's RBAC for Applications scope or application access policy "
    "(changes take up to 2 hours to apply)"
)
NO_MAILBOX = "the sending mailbox does not exist or has no Exchange Online mailbox"
TOO_BIG = (
    "the message is too large for Graph's sendMail ({}); lower MXRELAY_GRAPH_MAX_MESSAGE_SIZE so "
    "such messages are refused at SMTP time"
)


@pytest.mark.parametrize(
    ("answer", "fixed", "verdict", "fault", "detail"),
    [
        (GraphAnswer(202), False, GraphVerdict.DELIVERED, None, "accepted by Microsoft Graph"),
        (GraphAnswer(401, "InvalidAuthenticationToken", "Something happened."), False,
         GraphVerdict.REFRESH_TOKEN, None, f"Graph did not accept the access token{SAID}"),
        (GraphAnswer(401), False, GraphVerdict.REFRESH_TOKEN, None,
         "Graph did not accept the access token"),
        (GraphAnswer(429, "ApplicationThrottled", "Something happened."), False,
         GraphVerdict.THROTTLED, None, "Graph asked to slow down (429 ApplicationThrottled)"),
        (GraphAnswer(429), False, GraphVerdict.THROTTLED, None,
         "Graph asked to slow down (429 throttled)"),
        (GraphAnswer(503, retry_after=timedelta(seconds=1)), False, GraphVerdict.THROTTLED, None,
         "Graph asked to slow down (503 throttled)"),
        (GraphAnswer(403, "ErrorSendAsDenied", "Something happened."), False,
         GraphVerdict.PERMANENT, None,
         "the sending mailbox may not send as this message's From address (ErrorSendAsDenied): "
         "grant it Send As or Send on Behalf for that address, or send from the From address "
         f"itself{SAID}"),
        (GraphAnswer(403, "ErrorAccessDenied", "Something happened."), False,
         GraphVerdict.CONFIGURATION, GraphFault.ACCESS_DENIED,
         f"Graph denied access (ErrorAccessDenied): {ACCESS}{SAID}"),
        (GraphAnswer(403), True, GraphVerdict.CONFIGURATION, GraphFault.ACCESS_DENIED,
         f"Graph denied access (Forbidden): {ACCESS}"),
        (GraphAnswer(404, "ErrorInvalidUser", "Something happened."), True,
         GraphVerdict.CONFIGURATION, GraphFault.MAILBOX,
         f"{NO_MAILBOX} (ErrorInvalidUser){SAID}: check MXRELAY_GRAPH_MAILBOX"),
        (GraphAnswer(404), False, GraphVerdict.PERMANENT, None, f"{NO_MAILBOX} (NotFound)"),
        (GraphAnswer(413, message="Something happened."), False, GraphVerdict.PERMANENT, None,
         TOO_BIG.format("413") + SAID),
        (GraphAnswer(400, "ErrorMessageSizeExceeded"), False, GraphVerdict.PERMANENT, None,
         TOO_BIG.format("ErrorMessageSizeExceeded")),
        (GraphAnswer(500, "ErrorMessageSizeExceeded"), False, GraphVerdict.PERMANENT, None,
         TOO_BIG.format("ErrorMessageSizeExceeded")),
        (GraphAnswer(400, "ErrorInvalidRecipients", "Something happened."), False,
         GraphVerdict.PERMANENT, None, f"Exchange found no valid recipient in the message{SAID}"),
        (GraphAnswer(400, "ErrorMimeContentInvalidBase64String"), False, GraphVerdict.PERMANENT,
         None, "Graph could not decode the submitted message"),
        (GraphAnswer(408), False, GraphVerdict.TEMPORARY, None, "Graph answered 408"),
        (GraphAnswer(409, "Conflict", "Something happened."), False, GraphVerdict.TEMPORARY, None,
         f"Graph answered 409 Conflict{SAID}"),
        (GraphAnswer(423, message="Something happened."), False, GraphVerdict.TEMPORARY, None,
         f"Graph answered 423 {SAID}"),
        (GraphAnswer(425, "TooEarly"), False, GraphVerdict.TEMPORARY, None,
         "Graph answered 425 TooEarly"),
        (GraphAnswer(400, "ErrorInvalidRequest", "Something happened."), False,
         GraphVerdict.PERMANENT, None,
         f"Graph refused the message (400 ErrorInvalidRequest){SAID}"),
        (GraphAnswer(410), False, GraphVerdict.PERMANENT, None,
         "Graph refused the message (410 error)"),
        (GraphAnswer(503, message="Something happened."), False, GraphVerdict.TEMPORARY, None,
         f"Graph answered 503 error{SAID}"),
        (GraphAnswer(302, "Moved"), False, GraphVerdict.TEMPORARY, None, "Graph answered 302 Moved"),
    ],
)  # fmt: skip
def test_each_answer_reads_in_words(
    answer: GraphAnswer, fixed: bool, verdict: GraphVerdict, fault: GraphFault | None, detail: str
) -> None:
    assert classify(answer, fixed_mailbox=fixed) == Classification(verdict, detail, fault)
