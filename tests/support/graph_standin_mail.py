"""The Graph half of the Microsoft stand-in: `sendMail` answered the way Exchange answers it.

It checks what Graph checks, in Graph's order: the bearer token (expiry, audience, signature, the
`Mail.Send` role), the mailbox (known, inside the app's scope), the size, the base64 body; then it
parses the MIME and takes the recipients from To/Cc/Bcc as Exchange does (there is no envelope), and
refuses a From the mailbox may not send as. Tests script answers in arrival order (`Answer`, `Hang`,
`Drop`); with `MailboxLimits` it enforces Microsoft's per-mailbox limits itself (sliding windows by
arrival) and answers 429 beyond them. `graph_standin.py` serves it over HTTPS.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import Any

from tests.support.graph_standin_tokens import Reply

MAILBOX = "relay@contoso.example"


# --- scripted answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Answer `status` with Graph's error body (`code`, `message`) and extra headers."""

    status: int
    code: str | None = None
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Read the request, then say nothing for `seconds` (past the client's timeout) and close."""

    seconds: float = 3600.0


@dataclass(frozen=True)
class Drop:
    """Accept the message (Exchange has it), then drop the connection without an answer."""


Fault = Answer | Hang | Drop


def throttle(retry_after: str, header: str = "Retry-After") -> Answer:
    return Answer(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        ((header, retry_after),),
    )


def unavailable(retry_after: str | None = None) -> Answer:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Answer(503, "ServiceUnavailable", "Service Unavailable", headers)


EXPIRED_TOKEN = Answer(
    401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
)
ACCESS_DENIED = Answer(
    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
)
SEND_AS_DENIED = Answer(
    403,
    "ErrorSendAsDenied",
    "The user account which was used to submit this request does not have the right to send "
    "mail on behalf of the specified sending account.",
)
INVALID_RECIPIENTS = Answer(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
INVALID_BASE64 = Answer(
    400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
)
TOO_LARGE = Answer(413, "RequestEntityTooLarge", "The request is too large.")


# --- what it records ----------------------------------------------------------------------


@dataclass(frozen=True)
class SentMessage:
    """A message Exchange accepted: who it goes to is what the headers say."""

    mailbox: str
    mime: bytes
    body: bytes
    recipients: tuple[str, ...]
    from_address: str | None
    request_id: str
    client_request_id: str | None
    at: float


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None


@dataclass
class Mailbox:
    address: str
    send_as: set[str] = field(default_factory=set)
    in_scope: bool = True


@dataclass(frozen=True)
class MailboxLimits:
    """Microsoft's limits, as (count, window seconds); None switches one off."""

    messages: tuple[int, float] | None = (30, 60.0)
    requests: tuple[int, float] | None = (10_000, 600.0)
    upload_bytes: tuple[int, float] | None = (150_000_000, 300.0)
    recipients: tuple[int, float] | None = (10_000, 86_400.0)
    concurrency: int | None = 4


class _Window:
    def __init__(self, limit: tuple[int, float]) -> None:
        self.count, self.span = limit
        self.events: deque[tuple[float, int]] = deque()

    def wait(self, now: float, weight: int) -> float:
        while self.events and self.events[0][0] <= now - self.span:
            self.events.popleft()
        excess = sum(w for _, w in self.events) + weight - self.count
        if excess <= 0:
            return 0.0
        for at, amount in self.events:
            excess -= amount
            if excess <= 0:
                return at + self.span - now
        return math.inf

    def add(self, now: float, weight: int) -> None:
        self.events.append((now, weight))


class GraphMail:
    """Mailboxes, scripted answers, limits and what was sent. Not thread-safe: the stand-in
    calls it with its lock held."""

    def __init__(self, *, limits: MailboxLimits | None, request_limit: int) -> None:
        self.limits = limits
        self.request_limit = request_limit
        self.mailboxes: dict[str, Mailbox] = {MAILBOX: Mailbox(MAILBOX)}
        self.script: deque[Fault] = deque()
        self.messages: list[SentMessage] = []
        self.throttled = 0
        self.throttle_reasons: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._windows: dict[tuple[str, str], _Window] = {}

    def send_mail(
        self, mailbox: str, request: RecordedRequest, claims: dict[str, Any] | str
    ) -> Reply | Hang | Drop:
        """The answer to one sendMail; `claims` are the bearer token's, or why it is invalid."""
        if isinstance(claims, str):
            return graph_error(401, "InvalidAuthenticationToken", claims)
        fault = self.script.popleft() if self.script else None
        if isinstance(fault, Answer):
            return graph_error(fault.status, fault.code, fault.message, *fault.headers)
        if isinstance(fault, Hang):
            return fault
        throttled = self._enforce_limits(mailbox, request)
        if throttled is not None:
            self.throttled += 1
            self.throttle_reasons.append(throttled.body.decode())
            return throttled
        if "Mail.Send" not in claims.get("roles", []):
            return graph_error(403, ACCESS_DENIED.code, ACCESS_DENIED.message)
        box = self.mailboxes.get(mailbox)
        if box is None:
            return graph_error(
                404, "ErrorInvalidUser", f"The requested user '{mailbox}' is invalid."
            )
        if not box.in_scope:
            return graph_error(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
                "AccessPolicy settings.",
            )
        if len(request.body) > self.request_limit:
            return graph_error(413, TOO_LARGE.code, TOO_LARGE.message)
        try:
            mime = base64.b64decode(b"".join(request.body.split()), validate=True)
        except binascii.Error:
            return graph_error(400, INVALID_BASE64.code, INVALID_BASE64.message)
        # The header alone: recipients and sender are all Exchange reads here, and parsing the
        # body too tripled the stand-in's work per request (its answer time is `latency`).
        message = BytesHeaderParser(policy=email.policy.default).parsebytes(mime)
        assert isinstance(message, EmailMessage)
        recipients = exchange_recipients(message)
        if not recipients:
            return graph_error(400, INVALID_RECIPIENTS.code, INVALID_RECIPIENTS.message)
        sender = _first_address(message, "from")
        if sender is not None and sender != mailbox and sender not in box.send_as:
            return graph_error(403, SEND_AS_DENIED.code, SEND_AS_DENIED.message)
        request_id = str(uuid.uuid4())
        self.messages.append(
            SentMessage(
                mailbox,
                mime,
                request.body,
                recipients,
                sender,
                request_id,
                request.headers.get("client-request-id"),
                request.at,
            )
        )
        self._count(mailbox, request, recipients)
        if isinstance(fault, Drop):
            return fault
        return Reply(
            202,
            b"",
            (
                ("request-id", request_id),
                ("client-request-id", request.headers.get("client-request-id", "")),
            ),
        )

    def _enforce_limits(self, mailbox: str, request: RecordedRequest) -> Reply | None:
        limits = self.limits
        if limits is None:
            return None
        now = request.at
        waits: list[tuple[float, str]] = []
        if limits.concurrency is not None and self.in_flight > limits.concurrency:
            waits.append((1.0, "MailboxConcurrency"))
        if limits.requests is not None:
            window = self._window(mailbox, "requests", limits.requests)
            waits.append((window.wait(now, 1), "RequestRate"))
            window.add(now, 1)  # throttled requests count too
        if limits.messages is not None:
            waits.append(
                (self._window(mailbox, "messages", limits.messages).wait(now, 1), "MessageRate")
            )
        if limits.upload_bytes is not None:
            window = self._window(mailbox, "upload", limits.upload_bytes)
            waits.append((window.wait(now, len(request.body)), "UploadRate"))
        seconds, limit = max(waits, default=(0.0, ""))
        if seconds <= 0:
            return None
        retry_after = str(max(1, math.ceil(seconds))) if math.isfinite(seconds) else "3600"
        return graph_error(
            429,
            "ApplicationThrottled",
            f"Application is over its {limit} limit.",
            ("Retry-After", retry_after),
        )

    def _count(self, mailbox: str, request: RecordedRequest, recipients: tuple[str, ...]) -> None:
        limits = self.limits
        if limits is None:
            return
        if limits.messages is not None:
            self._window(mailbox, "messages", limits.messages).add(request.at, 1)
        if limits.upload_bytes is not None:
            self._window(mailbox, "upload", limits.upload_bytes).add(request.at, len(request.body))
        if limits.recipients is not None:
            self._window(mailbox, "recipients", limits.recipients).add(request.at, len(recipients))

    def _window(self, mailbox: str, kind: str, limit: tuple[int, float]) -> _Window:
        return self._windows.setdefault((mailbox, kind), _Window(limit))


def exchange_recipients(message: EmailMessage) -> tuple[str, ...]:
    """Recipients as Exchange takes them from a MIME submission: every address in every
    To, Cc and Bcc field (groups flattened), lower-cased, first occurrence kept."""
    seen: dict[str, None] = {}
    for name in ("to", "cc", "bcc"):
        for value in message.get_all(name, []):
            if isinstance(value, AddressHeader):
                for address in value.addresses:
                    if address.addr_spec and "@" in address.addr_spec:
                        seen.setdefault(address.addr_spec.lower(), None)
    return tuple(seen)


def _first_address(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    if isinstance(value, AddressHeader):
        for address in value.addresses:
            if address.addr_spec:
                return str(address.addr_spec).lower()
    return None


def graph_error(status: int, code: str | None, message: str, *headers: tuple[str, str]) -> Reply:
    request_id = str(uuid.uuid4())
    return Reply.json(
        status,
        {
            "error": {
                "code": code or "UnknownError",
                "message": message,
                "innerError": {"date": "2026-01-01T00:00:00", "request-id": request_id},
            }
        },
        ("request-id", request_id),
        *headers,
    )
