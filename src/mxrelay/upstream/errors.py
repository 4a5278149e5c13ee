"""What can go wrong talking to the upstream, as the relay's own exceptions, mapped in one place.

`map_upstream_errors()` turns what aiosmtplib and the socket raise into this small tree, the way
httpx's `map_httpcore_exceptions` translates its lower library, so callers catch one family:

    UpstreamError          anything the SMTP client raised; str() describes the original
      UpstreamLost         the connection failed, broke or timed out (socket and timeout errors)
        UpstreamClosed     the server closed it (aiosmtplib's SMTPServerDisconnected)
      UpstreamReplied      a reply the client library raised instead of returning (`code`, `text`)

What each means for a waiting client or a queued delivery is the caller's to say.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiosmtplib


class UpstreamError(Exception):
    """The upstream could not be used; `kind` names the original exception's type."""

    def __init__(self, description: str, *, kind: str = "") -> None:
        super().__init__(description)
        self.kind = kind


class UpstreamLost(UpstreamError):
    """The connection could not be opened, broke, or an answer did not come in time."""


class UpstreamClosed(UpstreamLost):
    """The server closed the connection."""


class UpstreamReplied(UpstreamError):
    """The client library raised the upstream's reply as an error (EHLO or RSET refused)."""

    def __init__(self, description: str, *, kind: str, code: int, text: str) -> None:
        super().__init__(description, kind=kind)
        self.code = code
        self.text = text


def describe(exc: BaseException) -> str:
    """One line naming the exception and its message, at most 300 characters."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


@contextlib.contextmanager
def map_upstream_errors() -> Iterator[None]:
    """Run a step of the SMTP client; what it raises comes out as an `UpstreamError`."""
    try:
        yield
    except aiosmtplib.SMTPServerDisconnected as exc:
        raise UpstreamClosed(describe(exc), kind=type(exc).__name__) from exc
    except OSError as exc:  # timeouts, refused or reset connections, aiosmtplib's among them
        raise UpstreamLost(describe(exc), kind=type(exc).__name__) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise UpstreamReplied(
            describe(exc), kind=type(exc).__name__, code=exc.code, text=exc.message
        ) from exc
    except aiosmtplib.SMTPException as exc:
        raise UpstreamError(describe(exc), kind=type(exc).__name__) from exc
