"""What an answer from Microsoft Graph means for the message: the error table as data.

`graph-delivery.md` lists what each `sendMail` answer means; `ROWS` is that table, evaluated in
order, turning one answer (status, Graph's error code, Retry-After) into a `Classification` and
then into the `delivery.errors` value the worker understands. It is pure: no HTTP, no clock (the
caller passes `now`), and the tests are parametrised from the rows. The words in `detail` are
written for the operator who reads the queue or the log: what happened and what to do, never a
token or a secret.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TypedDict

from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
    UpstreamUnavailable,
)
from mxrelay.model import GraphFault

DEFAULT_THROTTLE = timedelta(seconds=60)
"""Wait after a 429 that names no Retry-After (Graph normally sends one)."""

MAX_RETRY_AFTER = timedelta(days=1)
"""A longer Retry-After is taken as this (the queue lifetime bounds the wait anyway)."""

_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_MESSAGE_LIMIT = 300


class GraphVerdict(enum.StrEnum):
    DELIVERED = "delivered"
    REFRESH_TOKEN = "refresh_token"
    THROTTLED = "throttled"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    CONFIGURATION = "configuration"


CONFIGURATION_FAULTS = tuple(GraphFault)


class GraphConfigurationFault(ConfigurationFault):
    """A configuration fault that says which kind it is (for the gauge and for graph-test)."""

    def __init__(
        self,
        detail: str,
        *,
        fault: GraphFault,
        code: int | None = None,
        error_code: str | None = None,
        remote_id: str | None = None,
    ) -> None:
        super().__init__(detail, code=code, error_code=error_code, remote_id=remote_id)
        self.fault = fault


class Said(TypedDict):
    """What every error from an answer carries: status, Graph's error code and request-id."""

    code: int | None
    error_code: str | None
    remote_id: str | None


@dataclass(frozen=True, slots=True)
class GraphAnswer:
    """The parts of a Graph response that decide what happens next."""

    status: int
    error_code: str | None = None
    message: str = ""
    request_id: str | None = None
    retry_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    verdict: GraphVerdict
    detail: str
    fault: GraphFault | None = None


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as delay-seconds or as an HTTP date (RFC 9110 §10.2.3); None if absent or
    unreadable. A date in the past means "now"; very long waits are capped."""
    if value is None:
        return None
    match = _SECONDS.match(value)
    if match:
        seconds = min(float(match.group(1)), MAX_RETRY_AFTER.total_seconds())
        delay = timedelta(seconds=seconds)
    else:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always GMT
            when = when.replace(tzinfo=UTC)
        delay = max(when - now, timedelta(0))
    return min(delay, MAX_RETRY_AFTER)


def parse_error_body(body: bytes) -> tuple[str | None, str]:
    """Graph's `{"error": {"code": ..., "message": ...}}`, tolerant of anything else."""
    try:
        document = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None, ""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return None, ""
    code = error.get("code")
    message = error.get("message")
    return (
        code if isinstance(code, str) and code else None,
        " ".join(message.split())[:_MESSAGE_LIMIT] if isinstance(message, str) else "",
    )


SUCCESS = range(200, 300)
CLIENT_ERROR = range(400, 500)
SERVER_ERROR = range(500, 1000)  # a status line has three digits


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the error table: the answers it matches, and what they mean.

    A row matches an answer whose status is in `status` (any if None) and whose error code is
    `code` (any if None); `retry_after` and `fixed_mailbox` narrow it to answers with a Retry-After
    and to a fixed sending mailbox. `text` is the detail, with `{status}`, `{code}` (Graph's error
    code, or `unnamed` when it named none) and `{said}` (Graph's own message, if any).
    """

    status: range | frozenset[int] | None
    code: str | None
    verdict: GraphVerdict
    text: str
    unnamed: str = ""
    fault: GraphFault | None = None
    retry_after: bool = False
    fixed_mailbox: bool = False

    def matches(self, answer: GraphAnswer, *, fixed_mailbox: bool) -> bool:
        return (
            (self.status is None or answer.status in self.status)
            and (self.code is None or answer.error_code == self.code)
            and (not self.retry_after or answer.retry_after is not None)
            and (not self.fixed_mailbox or fixed_mailbox)
        )

    def classification(self, answer: GraphAnswer) -> Classification:
        said = f" (Graph: {answer.message})" if answer.message else ""
        code = answer.error_code or self.unnamed
        text = self.text.format(status=answer.status, code=code, said=said)
        return Classification(self.verdict, text.strip(), self.fault)


_ACCEPTED = "accepted by Microsoft Graph"
_TOKEN_REFUSED = "Graph did not accept the access token{said}"
_SLOW_DOWN = "Graph asked to slow down ({status} {code})"
_SEND_AS_DENIED = (
    "the sending mailbox may not send as this message's From address (ErrorSendAsDenied): grant "
    "it Send As or Send on Behalf for that address, or send from the From address itself{said}"
)
_ACCESS_DENIED = (
    "Graph denied access ({code}): the app lacks the Mail.Send application permission with admin "
    "consent, or the sending mailbox is outside the app's RBAC for Applications scope or "
    "application access policy (changes take up to 2 hours to apply){said}"
)
_NO_MAILBOX = "the sending mailbox does not exist or has no Exchange Online mailbox ({code}){said}"
_NO_FIXED_MAILBOX = _NO_MAILBOX + ": check MXRELAY_GRAPH_MAILBOX"
_TOO_LARGE = (
    "the message is too large for Graph's sendMail ({code}); lower MXRELAY_GRAPH_MAX_MESSAGE_SIZE "
    "so such messages are refused at SMTP time{said}"
)
_NO_RECIPIENT = "Exchange found no valid recipient in the message{said}"
_UNDECODABLE = "Graph could not decode the submitted message{said}"
_REFUSED = "Graph refused the message ({status} {code}){said}"
_ANSWERED = "Graph answered {status} {code}{said}"

ROWS: tuple[Row, ...] = (
    Row(SUCCESS, None, GraphVerdict.DELIVERED, _ACCEPTED),
    Row(frozenset({401}), None, GraphVerdict.REFRESH_TOKEN, _TOKEN_REFUSED),
    Row(frozenset({429}), None, GraphVerdict.THROTTLED, _SLOW_DOWN, unnamed="throttled"),
    Row(SERVER_ERROR, None, GraphVerdict.THROTTLED, _SLOW_DOWN, unnamed="throttled",
        retry_after=True),
    Row(frozenset({403}), "ErrorSendAsDenied", GraphVerdict.PERMANENT, _SEND_AS_DENIED),
    Row(frozenset({403}), None, GraphVerdict.CONFIGURATION, _ACCESS_DENIED, unnamed="Forbidden",
        fault=GraphFault.ACCESS_DENIED),
    Row(frozenset({404}), None, GraphVerdict.CONFIGURATION, _NO_FIXED_MAILBOX, unnamed="NotFound",
        fault=GraphFault.MAILBOX, fixed_mailbox=True),
    Row(frozenset({404}), None, GraphVerdict.PERMANENT, _NO_MAILBOX, unnamed="NotFound"),
    Row(frozenset({413}), None, GraphVerdict.PERMANENT, _TOO_LARGE, unnamed="413"),
    Row(None, "ErrorMessageSizeExceeded", GraphVerdict.PERMANENT, _TOO_LARGE),
    Row(None, "ErrorInvalidRecipients", GraphVerdict.PERMANENT, _NO_RECIPIENT),
    Row(None, "ErrorMimeContentInvalidBase64String", GraphVerdict.PERMANENT, _UNDECODABLE),
    Row(frozenset({408, 409, 423, 425}), None, GraphVerdict.TEMPORARY, _ANSWERED),
    Row(CLIENT_ERROR, None, GraphVerdict.PERMANENT, _REFUSED, unnamed="error"),
    Row(None, None, GraphVerdict.TEMPORARY, _ANSWERED, unnamed="error"),
)  # fmt: skip
"""The error table of graph-delivery.md ("Errors and what they mean"), evaluated in order: the first
row that matches an answer classifies it; the last matches every answer."""


def classify(answer: GraphAnswer, *, fixed_mailbox: bool) -> Classification:
    """The first row of the error table that matches the answer."""
    row = next(row for row in ROWS if row.matches(answer, fixed_mailbox=fixed_mailbox))
    return row.classification(answer)


def to_error(classification: Classification, answer: GraphAnswer) -> DeliveryError:
    """The exception the worker understands, carrying status, error code and request-id."""
    common = Said(code=answer.status, error_code=answer.error_code, remote_id=answer.request_id)
    detail = classification.detail
    match classification.verdict:
        case GraphVerdict.THROTTLED:
            return Throttled(detail, retry_after=answer.retry_after or DEFAULT_THROTTLE, **common)
        case GraphVerdict.PERMANENT:
            return PermanentFailure(detail, **common)
        case GraphVerdict.CONFIGURATION:
            fault = classification.fault or GraphFault.ACCESS_DENIED
            return GraphConfigurationFault(detail, fault=fault, **common)
        case GraphVerdict.REFRESH_TOKEN:
            return GraphConfigurationFault(
                f"{detail}; a freshly issued token was refused too: check that "
                "MXRELAY_GRAPH_AUTHORITY and MXRELAY_GRAPH_ENDPOINT belong to the same cloud",
                fault=GraphFault.TOKEN_REJECTED,
                **common,
            )
        case _ if answer.status >= 500:
            return UpstreamUnavailable(detail, **common)
        case _:
            return TemporaryFailure(detail, **common)
