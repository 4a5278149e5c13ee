"""The error table as a pure function, and Retry-After parsing."""

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
    Fault,
    GraphAnswer,
    GraphVerdict,
    classify,
    parse_error_body,
    parse_retry_after,
    to_error,
)
from mxrelay.metrics import GRAPH_FAULTS

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


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
    assert result.fault is Fault.MAILBOX


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
    assert tuple(fault.value for fault in CONFIGURATION_FAULTS) == GRAPH_FAULTS
