"""`map_upstream_errors()`: what the SMTP client raises comes out as one family, described once."""

from __future__ import annotations

import aiosmtplib
import pytest

from mxrelay.upstream.errors import (
    UpstreamClosed,
    UpstreamError,
    UpstreamLost,
    UpstreamReplied,
    describe,
    map_upstream_errors,
)


@pytest.mark.parametrize(
    ("raised", "mapped"),
    [
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), UpstreamClosed),
        (aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"), UpstreamLost),
        (aiosmtplib.SMTPConnectTimeoutError("Timed out connecting"), UpstreamLost),
        (aiosmtplib.SMTPConnectError("Error connecting to 127.0.0.1"), UpstreamLost),
        # Both a reply and a failed connection: the connection could not be used.
        (aiosmtplib.SMTPConnectResponseError(554, "go away"), UpstreamLost),
        (ConnectionRefusedError(111, "Connection refused"), UpstreamLost),
        (TimeoutError(), UpstreamLost),
        (aiosmtplib.SMTPHeloError(501, "5.5.4 Syntax"), UpstreamReplied),
        (aiosmtplib.SMTPResponseException(421, "4.3.2 Shutting down"), UpstreamReplied),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"), UpstreamError),
    ],
)
def test_each_client_error_maps_to_its_kind(raised: Exception, mapped: type[UpstreamError]) -> None:
    with pytest.raises(UpstreamError) as caught, map_upstream_errors():
        raise raised
    assert type(caught.value) is mapped
    assert caught.value.kind == type(raised).__name__
    assert str(caught.value) == describe(raised)
    assert caught.value.__cause__ is raised


def test_a_raised_reply_keeps_its_code_and_text() -> None:
    with pytest.raises(UpstreamReplied) as caught, map_upstream_errors():
        raise aiosmtplib.SMTPHeloError(501, "5.5.4 Syntax")
    assert (caught.value.code, caught.value.text) == (501, "5.5.4 Syntax")


def test_other_errors_pass_unchanged() -> None:
    with pytest.raises(KeyError), map_upstream_errors():
        raise KeyError("not the upstream's")


def test_the_description_is_one_bounded_line() -> None:
    text = describe(aiosmtplib.SMTPServerDisconnected("first\nsecond" + "x" * 400))
    assert text.startswith("SMTPServerDisconnected: first second")
    assert "\n" not in text
    assert len(text) == 300
