"""Plain values shared by every stage: replies, recipient verdicts, transactions, delivery modes,
mailboxes as compared and the calendar transform's recipient scope (`MXRELAY_ICS_STRIP`); and the
stage vocabularies that metric labels are drawn from (queue states, attempt outcomes, DNS statuses,
Graph faults and pacing limits, calendar actions, header changes).

This module is a leaf: it imports nothing from mxrelay, does no I/O, and every value here is frozen,
so a value can cross a stage boundary (smtp → store → delivery) without anyone changing it on the way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import idna


def utc_now() -> datetime:
    """The wall clock, timezone-aware: the default `clock` every stage takes (tests inject one)."""
    return datetime.now(UTC)


class DeliveryMode(enum.StrEnum):
    """What happens after DATA (DESIGN.md, "Delivery modes")."""

    GRAPH = "graph"
    SMTP = "smtp"
    HOLD = "hold"
    PASSTHROUGH = "passthrough"


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply. The class digit of the enhanced status is taken from `code` when rendered.

    `status` holds only subject.detail (``"1.2"``), so a 4xx reply can never carry a 5.x.x status:
    softening a reject (5xx → 4xx) is a matter of changing the code alone, as in Postfix's dsn_fix.
    `status` may be empty for replies that carry no enhanced code (220 greeting, 221, 354).
    """

    code: int
    status: str
    text: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"SMTP reply code out of range: {self.code}")
        if any(c in self.text for c in "\r\n"):
            raise ValueError("reply text must be one line; use lines for multi-line replies")

    @property
    def enhanced(self) -> str:
        """The full enhanced status code (``"5.1.2"``), or ``""`` when there is none."""
        return f"{self.code // 100}.{self.status}" if self.status else ""

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def with_code(self, code: int) -> Reply:
        """The same reply with another basic code (the enhanced class follows it)."""
        return Reply(code, self.status, self.text)

    def __str__(self) -> str:
        enhanced = self.enhanced
        return f"{self.code} {enhanced} {self.text}" if enhanced else f"{self.code} {self.text}"

    def render(self) -> bytes:
        """The reply as it goes on the wire, CRLF included."""
        return str(self).encode("utf-8", "replace") + b"\r\n"


class Reason(enum.StrEnum):
    """Outcome class of a recipient decision; also the metric label (a small, fixed set)."""

    OK = "ok"
    NULL_MX = "nullmx"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    NO_USABLE_MX = "no_usable_mx"
    LOOP = "loop"
    TEMPFAIL = "tempfail"
    SYNTAX = "syntax"
    SPECIAL_USE = "special_use"
    POLICY = "policy"
    LIMIT = "limit"
    UPSTREAM = "upstream"


@dataclass(frozen=True, slots=True)
class RecipientVerdict:
    """What the recipient check decided for one RCPT, and the evidence behind it.

    `mailbox` is the recipient as it should be forwarded (source route removed, case kept);
    `domain` is the A-label form that was looked up, if any.
    `evidence` is a list of human-readable lines (records with TTLs, which stage decided) for logs and
    `mxrelay check`; it never feeds back into a decision.
    """

    reply: Reply
    reason: Reason
    mailbox: str = ""
    domain: str | None = None
    stage: str = ""
    evidence: tuple[str, ...] = ()
    cached: bool = False

    @property
    def accepted(self) -> bool:
        return self.reply.is_positive


@dataclass(frozen=True, slots=True)
class Peer:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str
    cipher: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the SMTP layer knows about the connection a transaction arrived on."""

    peer: Peer
    helo: str = ""
    esmtp: bool = False
    tls: TlsInfo | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class RefusedRecipient:
    address: str
    reply: Reply
    reason: Reason


MailParams = tuple[tuple[str, str | None], ...]
"""The ESMTP parameters of MAIL FROM as given, keyword upper-cased: `(("BODY", "8BITMIME"),)`."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """One accepted SMTP transaction, handed from the SMTP layer to the sink after DATA.

    `data` is the message exactly as received (CRLF line ends, dot-stuffing removed), without the
    relay's own trace header; sinks add `Received:` themselves where they forward.
    """

    session: SessionInfo
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    received_at: datetime
    mail_params: MailParams = ()
    refused: tuple[RefusedRecipient, ...] = ()
    smtputf8: bool = False
    body_8bitmime: bool = False
    transaction_id: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())


# Mailboxes as compared, and which recipients get the calendar transform. The setting arrives as a
# lower-cased tuple (`("off",)`, `("all",)`, or addresses and `@domain` entries); `IcsScope` turns
# it into a typed value once, when the settings load, and refuses mixtures that cannot mean
# anything (`off,@example.com`). Domains compare case-insensitively in A-label form (so
# `@bücher.example` matches `xn--bcher-kva.example`); local parts case-insensitively too, as the
# mailbox systems the relay serves (Exchange) treat them.


class ScopeKind(enum.StrEnum):
    OFF = "off"
    ALL = "all"
    LISTED = "listed"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address as compared: local part as written (quotes removed), domain in lower-case
    A-label form. `domain` is empty when the address has none."""

    local: str
    domain: str

    @classmethod
    def parse(cls, address: str) -> Mailbox:
        text = address.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1].strip()
        local, at, domain = text.rpartition("@")
        if not at:
            return cls(_unquote(text), "")
        return cls(_unquote(local), canonical_domain(domain))

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local


def to_alabel(name: str) -> str:
    """A domain name in lower-case IDNA A-labels, as every part of the relay compares domains.

    IDNA 2008 with UTS-46 non-transitional processing (so `ß` stays `ß`, as browsers and mail
    systems now treat it); raises `idna.IDNAError` (a `UnicodeError`) for a name IDNA refuses.
    The one conversion the recipient checks, the settings and the transforms share.
    """
    if name.isascii():
        return name.lower()
    return idna.encode(name, uts46=True, transitional=False).decode("ascii").lower()


def utf8_address_text(char: str) -> bool:
    """A non-ASCII character RFC 6531 allows in an address (a sender's or a recipient's):
    printable. That refuses C1 controls (NEL), line and paragraph separators and the
    bidirectional and other format controls, which would let one address read as another in a
    log line, the console or a header downstream."""
    return not char.isascii() and char.isprintable()


def domain_alabel(domain: str) -> str:
    """A domain as written in a setting or a file: trimmed, without its final dot, `to_alabel`."""
    return to_alabel(domain.strip().lower().removesuffix("."))


def canonical_domain(domain: str) -> str:
    """`domain_alabel` for a domain read from mail, which must not fail: an address literal, or a
    name IDNA cannot encode, is only lower-cased."""
    text = domain.strip().rstrip(".").lower()
    if text.startswith("["):
        return text
    try:
        return to_alabel(text)
    except idna.IDNAError:
        return text


def _unquote(local: str) -> str:
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        inner = local[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return local


@dataclass(frozen=True, slots=True)
class IcsScope:
    """The recipients whose copy of a message is transformed."""

    kind: ScopeKind
    addresses: frozenset[Mailbox] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def from_setting(cls, values: Iterable[str]) -> IcsScope:
        """Parse `MimeSettings.ics_strip`. Raises ValueError naming the offending entry."""
        entries = [value.strip() for value in values if value.strip()]
        if not entries or entries == ["off"]:
            return cls(ScopeKind.OFF)
        if entries == ["all"]:
            return cls(ScopeKind.ALL)
        addresses: set[Mailbox] = set()
        domains: set[str] = set()
        for entry in entries:
            if entry in ("off", "all"):
                raise ValueError(f"{entry!r} cannot be combined with addresses or @domains")
            if entry.startswith("@") and len(entry) > 1 and "@" not in entry[1:]:
                domains.add(canonical_domain(entry[1:]))
                continue
            mailbox = Mailbox.parse(entry)
            if not mailbox.local or not mailbox.domain:
                raise ValueError(f"{entry!r} is neither an address nor an @domain")
            addresses.add(_folded(mailbox))
        return cls(ScopeKind.LISTED, frozenset(addresses), frozenset(domains))

    @property
    def active(self) -> bool:
        return self.kind is not ScopeKind.OFF

    def matches(self, recipient: str) -> bool:
        """Whether `recipient` (a mailbox, angle brackets allowed) is in scope."""
        if self.kind is ScopeKind.OFF:
            return False
        if self.kind is ScopeKind.ALL:
            return True
        mailbox = Mailbox.parse(recipient)
        return mailbox.domain in self.domains or _folded(mailbox) in self.addresses


def _folded(mailbox: Mailbox) -> Mailbox:
    return Mailbox(mailbox.local.lower(), mailbox.domain)


# --- Stage vocabularies the metrics label by --------------------------------------------------
# Each belongs to one stage, but `metrics` (a leaf that imports only this module) takes its
# label values from them, so they are declared here, once.


class QueueState(enum.StrEnum):
    """Where a queue entry is (the store's `queue.state`, after Postfix's queues)."""

    QUEUED = "queued"
    ACTIVE = "active"
    DEFERRED = "deferred"
    HELD = "held"
    DEAD = "dead"
    DELIVERED = "delivered"

    @classmethod
    def parse(cls, name: str) -> QueueState:
        """An operator's words too: delivering (or leased) = active, failed = dead."""
        aliases = {"delivering": "active", "failed": "dead", "leased": "active"}
        return cls(aliases.get(name.lower(), name.lower()))


class AttemptOutcome(enum.StrEnum):
    """What one attempt came to: the `attempts.outcome` column and the deliveries metric label."""

    DELIVERED = "delivered"
    PARTIAL = "partial"
    """Some recipients delivered, the others deferred."""
    DEFERRED = "deferred"
    THROTTLED = "throttled"
    HELD = "held"
    FAILED = "failed"


class RdType(enum.StrEnum):
    """The record types the recipient check asks for."""

    MX = "MX"
    A = "A"
    AAAA = "AAAA"


class DnsStatus(enum.StrEnum):
    """Outcome class of one DNS query (also the `result` label of mxrelay_dns_lookups_total)."""

    OK = "ok"  # NOERROR, with records of the asked type at the end of the chain
    NODATA = "nodata"  # NOERROR, the name exists but has no such records
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"  # FORMERR/NOTIMP, unparsable reply, network error, TCP failing after TC=1

    @property
    def transient(self) -> bool:
        """No definite statement about the name: the verdict can only be "try again later"."""
        return self in _TRANSIENT


_TRANSIENT = frozenset({DnsStatus.SERVFAIL, DnsStatus.REFUSED, DnsStatus.TIMEOUT, DnsStatus.ERROR})


class GraphFault(enum.StrEnum):
    """Kinds of Graph configuration fault; the label of the configuration-fault gauge."""

    CREDENTIALS = "credentials"  # secret/certificate wrong, app or tenant unknown, app disabled
    CONSENT = "consent"  # Mail.Send not granted (no admin consent)
    ACCESS_DENIED = "access_denied"  # mailbox outside the app's RBAC scope or access policy
    MAILBOX = "mailbox"  # the fixed sending mailbox does not exist or has no Exchange mailbox
    TOKEN_REJECTED = "token_rejected"  # Graph refuses tokens the authority just issued


class PacingLimit(enum.StrEnum):
    """Which Graph pacing limit made a message wait; also the metric label."""

    RETRY_AFTER = "retry_after"
    CONCURRENCY = "concurrency"
    MESSAGES = "messages"
    REQUESTS = "requests"
    UPLOAD_BYTES = "upload_bytes"
    RECIPIENTS = "recipients"


class IcsAction(enum.StrEnum):
    """What happens to calendar parts (`MXRELAY_ICS_ACTION`); also the metric label."""

    STRIP = "strip"
    ATTACH = "attach"


class RecipientChange(enum.StrEnum):
    """How a To/Cc/Bcc entry changed to match the envelope (the header-recipients label)."""

    ADDED = "added"
    REMOVED = "removed"
    REFUSED = "refused"
