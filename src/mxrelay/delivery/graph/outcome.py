"""What an answer from Microsoft Graph means for the message: the error table as code.

`graph-delivery.md` lists what each `sendMail` answer means; this module turns one answer (status,
Graph's error code, Retry-After) into a `Classification` and then into the `delivery.errors` value
the worker understands. It is pure: no HTTP, no clock (the caller passes `now`), so every row of the
table is a one-line test. The words in `detail` are written for the operator who reads the queue or
the log: what happened and what to do, never a token or a secret.
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


class Fault(enum.StrEnum):
    """Kinds of configuration fault; the label of the configuration-fault gauge."""

    CREDENTIALS = "credentials"  # secret/certificate wrong, app or tenant unknown, app disabled
    CONSENT = "consent"  # Mail.Send not granted (no admin consent)
    ACCESS_DENIED = "access_denied"  # mailbox outside the app's RBAC scope or access policy
    MAILBOX = "mailbox"  # the fixed sending mailbox does not exist or has no Exchange mailbox
    TOKEN_REJECTED = "token_rejected"  # Graph refuses tokens the authority just issued
    UNREACHABLE = "unreachable"  # not a fault of configuration: listed so the gauge has no holes


CONFIGURATION_FAULTS = tuple(fault for fault in Fault if fault is not Fault.UNREACHABLE)


class GraphConfigurationFault(ConfigurationFault):
    """A configuration fault that says which kind it is (for the gauge and for graph-test)."""

    def __init__(
        self,
        detail: str,
        *,
        fault: Fault,
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
    fault: Fault | None = None


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


def classify(answer: GraphAnswer, *, fixed_mailbox: bool) -> Classification:
    """One row of the error table in graph-delivery.md."""
    status, code = answer.status, answer.error_code or ""
    said = f" (Graph: {answer.message})" if answer.message else ""
    if 200 <= status < 300:
        return Classification(GraphVerdict.DELIVERED, "accepted by Microsoft Graph")
    if status == 401:
        return Classification(
            GraphVerdict.REFRESH_TOKEN, f"Graph did not accept the access token{said}"
        )
    if status == 429 or (status >= 500 and answer.retry_after is not None):
        return Classification(
            GraphVerdict.THROTTLED, f"Graph asked to slow down ({status} {code or 'throttled'})"
        )
    if status == 403 and code == "ErrorSendAsDenied":
        return Classification(
            GraphVerdict.PERMANENT,
            "the sending mailbox may not send as this message's From address "
            "(ErrorSendAsDenied): grant it Send As or Send on Behalf for that address, or send "
            f"from the From address itself{said}",
        )
    if status == 403:
        return Classification(
            GraphVerdict.CONFIGURATION,
            f"Graph denied access ({code or 'Forbidden'}): the app lacks the Mail.Send "
            "application permission with admin consent, or the sending mailbox is outside the "
            "app's RBAC for Applications scope or application access policy (changes take up "
            f"to 2 hours to apply){said}",
            Fault.ACCESS_DENIED,
        )
    if status == 404:
        words = (
            f"the sending mailbox does not exist or has no Exchange Online mailbox "
            f"({code or 'NotFound'}){said}"
        )
        if fixed_mailbox:
            return Classification(
                GraphVerdict.CONFIGURATION, f"{words}: check MXRELAY_GRAPH_MAILBOX", Fault.MAILBOX
            )
        return Classification(GraphVerdict.PERMANENT, words)
    if status == 413 or code == "ErrorMessageSizeExceeded":
        return Classification(
            GraphVerdict.PERMANENT,
            f"the message is too large for Graph's sendMail ({code or '413'}); lower "
            f"MXRELAY_GRAPH_MAX_MESSAGE_SIZE so such messages are refused at SMTP time{said}",
        )
    if code == "ErrorInvalidRecipients":
        return Classification(
            GraphVerdict.PERMANENT, f"Exchange found no valid recipient in the message{said}"
        )
    if code == "ErrorMimeContentInvalidBase64String":
        return Classification(
            GraphVerdict.PERMANENT, f"Graph could not decode the submitted message{said}"
        )
    if status in (408, 409, 423, 425):
        return Classification(
            GraphVerdict.TEMPORARY, f"Graph answered {status} {code}{said}".strip()
        )
    if 400 <= status < 500:
        return Classification(
            GraphVerdict.PERMANENT, f"Graph refused the message ({status} {code or 'error'}){said}"
        )
    return Classification(
        GraphVerdict.TEMPORARY, f"Graph answered {status} {code or 'error'}{said}".strip()
    )


def to_error(classification: Classification, answer: GraphAnswer) -> DeliveryError:
    """The exception the worker understands, carrying status, error code and request-id."""
    common = Said(code=answer.status, error_code=answer.error_code, remote_id=answer.request_id)
    detail = classification.detail
    verdict = classification.verdict
    if verdict is GraphVerdict.THROTTLED:
        return Throttled(detail, retry_after=answer.retry_after or DEFAULT_THROTTLE, **common)
    if verdict is GraphVerdict.PERMANENT:
        return PermanentFailure(detail, **common)
    if verdict is GraphVerdict.CONFIGURATION:
        return GraphConfigurationFault(
            detail, fault=classification.fault or Fault.ACCESS_DENIED, **common
        )
    if verdict is GraphVerdict.REFRESH_TOKEN:
        return GraphConfigurationFault(
            f"{detail}; a freshly issued token was refused too: check that "
            "MXRELAY_GRAPH_AUTHORITY and MXRELAY_GRAPH_ENDPOINT belong to the same cloud",
            fault=Fault.TOKEN_REJECTED,
            **common,
        )
    if answer.status >= 500:
        return UpstreamUnavailable(detail, **common)
    return TemporaryFailure(detail, **common)
