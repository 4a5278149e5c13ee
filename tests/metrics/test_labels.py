"""The label enums that classify what they are given: a reply, a Graph status, a Graph error code."""

from __future__ import annotations

import pytest

from mxrelay.metrics import GraphErrorCode, GraphStatusClass, ReplyClass
from mxrelay.model import Reply


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (250, ReplyClass.ACCEPTED),
        (354, ReplyClass.ACCEPTED),
        (421, ReplyClass.TEMPFAIL),
        (451, ReplyClass.TEMPFAIL),
        (550, ReplyClass.REJECTED),
        (554, ReplyClass.REJECTED),
    ],
)
def test_a_reply_is_accepted_tempfail_or_rejected(code: int, expected: ReplyClass) -> None:
    assert ReplyClass.of(Reply(code, "", "text")) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "2xx"),
        (202, "2xx"),
        (301, "3xx"),
        (400, "4xx"),
        (429, "4xx"),
        (500, "5xx"),
        (503, "5xx"),
        (999, "5xx"),  # a status line has three digits; the error table reads 5xx-9xx alike
    ],
)
def test_a_graph_status_is_counted_by_its_class(status: int, expected: str) -> None:
    assert GraphStatusClass.of(status) == expected


def test_graph_error_codes_are_counted_by_name_when_known() -> None:
    assert GraphErrorCode.of("ErrorSendAsDenied") is GraphErrorCode.SEND_AS_DENIED
    assert (
        GraphErrorCode.of("InvalidAuthenticationToken")
        is GraphErrorCode.INVALID_AUTHENTICATION_TOKEN
    )
    assert GraphErrorCode.of("ErrorSomethingNew") is GraphErrorCode.OTHER
    assert GraphErrorCode.of("other") is GraphErrorCode.OTHER
    assert GraphErrorCode.of("") is GraphErrorCode.OTHER
