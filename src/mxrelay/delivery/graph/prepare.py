"""The message as Graph will see it: sending mailbox, sender allow-list, size limit, missing headers.

Pure functions, shared by the Graph transport (at delivery time: `prepare` gives the bytes and the
sending mailbox of one job, or a `PermanentFailure`) and the SMTP policy (at SMTP time, wired by
app.py): which mailbox a message is sent from, whether its senders are allowed, how big a message
the relay accepts in Graph mode, and the From/Date/Message-ID a message must carry before
Exchange sees it. The header From is read with bounded work (`mime.addresses`) at the end of DATA
and kept in the store; delivery reuses the stored value (`stored_author`) rather than reading it
again at every attempt. Completing headers is deterministic (the Message-ID comes from the stored
message id, the Date from the time the relay accepted it) so that every attempt sends the same
bytes. The rest of the message is never re-serialised: new fields are inserted as bytes in front
of the existing header block.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from ulid import ULID

from mxrelay.config import Settings
from mxrelay.delivery.errors import PermanentFailure
from mxrelay.delivery.transport import DeliveryJob
from mxrelay.mime.addresses import read_author, split_list
from mxrelay.mime.headers import HeaderResult
from mxrelay.mime.parse import header_region
from mxrelay.model import DeliveryMode, canonical_domain

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_FIELD_NAMES = re.compile(rb"(?:^|(?<=\r))([!-9;-~]+)[ \t]*:", re.MULTILINE)


class MailboxSource(enum.StrEnum):
    """`MXRELAY_GRAPH_MAILBOX_FROM`: where the sending mailbox comes from when none is fixed."""

    HEADER = "header"
    ENVELOPE = "envelope"


def choose_mailbox(
    fixed: str | None, source: MailboxSource, envelope_sender: str, header_from: str | None
) -> str | None:
    """The mailbox in `/users/{mailbox}/sendMail`: the fixed one, else the configured source,
    else the other one (a null envelope sender `<>` has no mailbox). None if there is none."""
    if fixed:
        return fixed
    envelope = envelope_sender.strip().strip("<>").strip() or None
    first, second = (
        (header_from, envelope) if source is MailboxSource.HEADER else (envelope, header_from)
    )
    return first or second


def canonical_address(address: str) -> str:
    """Lower-case, domain in A-label form: how allow-list entries and senders are compared."""
    local, at, domain = address.strip().strip("<>").strip().rpartition("@")
    if not at:
        return domain.lower()
    return f"{local.lower()}@{canonical_domain(domain)}"


def address_allowed(address: str, allowed: Sequence[str]) -> bool:
    """Is `address` on the allow-list (full addresses and `@domain` entries)?"""
    canonical = canonical_address(address)
    domain = "@" + canonical.rpartition("@")[2]
    entries = {
        canonical_address(e) if not e.startswith("@") else "@" + canonical_address(e[1:])
        for e in allowed
    }
    return canonical in entries or domain in entries


def sender_allowed(envelope_sender: str, header_from: str | None, allowed: Sequence[str]) -> bool:
    """`MXRELAY_GRAPH_ALLOWED_SENDERS`, checked against both identities of a message.

    The envelope sender (unless null) and the header From (the identity Exchange sends as) must
    both be allowed; a message with neither is refused. Checking only the envelope would let a
    client name any From it likes: the spoofing gap of the relay mxrelay replaces. An empty list
    allows everyone. The SMTP policy answers `550 5.7.1` when this is False.
    """
    if not allowed:
        return True
    envelope = envelope_sender.strip().strip("<>").strip()
    identities = [identity for identity in (envelope, header_from) if identity]
    return bool(identities) and all(address_allowed(i, allowed) for i in identities)


RECEIVED_ALLOWANCE = 2048
"""Bytes of the relay's own Received field (`received.py`), which every attempt sends in front of
the message the client sent: the client's HELO name and the recipient (255 characters each at
most), the peer's address, the relay's host name, the id, the TLS version and cipher, the date.
About 1 KiB at most."""


def graph_size_limit(settings: Settings) -> int:
    """The message size the relay advertises (SIZE) and accepts: in Graph mode no larger than
    what Graph's sendMail takes (`552 5.3.4` above it), otherwise the general limit. Delivery
    holds a message to the same limit on the same bytes (`over_graph_size`)."""
    general: int = settings.smtp.max_message_size
    if settings.service.delivery is DeliveryMode.GRAPH and settings.graph.max_message_size:
        return (
            min(general, settings.graph.max_message_size)
            if general
            else settings.graph.max_message_size
        )
    return general


def over_graph_size(job_size: int, limit: int) -> bool:
    """Whether a job of `job_size` bytes (the stored message, or its transformed variant, behind
    the relay's Received field) is larger than the Graph limit (0: none), as the SMTP server
    counted it when it accepted the message: without the Received field (`RECEIVED_ALLOWANCE`)
    nor the Bcc, Date, Message-ID and From that `prepare` adds. A message the client got 250 for
    is never refused for its size afterwards."""
    return bool(limit) and job_size - RECEIVED_ALLOWANCE > limit


def field_names(data: bytes) -> set[str]:
    """Lower-case names of the message's own header fields (one regular expression in C over
    the header block, which may hold tens of thousands of fields)."""
    end, _ = header_region(data, len(data))
    found = _FIELD_NAMES.findall(data, 0, end)
    return {name.decode("ascii").lower() for name in found}


def header_from(data: bytes) -> str | None:
    """The first address of the From header (what Exchange sends as), or None; bounded work
    (`mime.addresses.read_author`), never raises."""
    return read_author(data).address


def message_sender_allowed(mail_from: str, data: bytes, allowed: Sequence[str]) -> bool:
    """The allow-list at the end of DATA: `sender_allowed` with the message's header From. A From
    field the relay cannot read (beyond the parsing bounds) is not on any list: Exchange would
    read something from it, and the relay cannot tell what."""
    if not allowed:
        return True
    author = read_author(data)
    return author.readable and sender_allowed(mail_from, author.address, allowed)


def stored_author(header_from_summary: str) -> str | None:
    """The sending identity recorded at accept time: the first address of the stored From."""
    addresses = split_list(header_from_summary)
    return addresses[0] if addresses else None


def message_id_for(stored_id: str, hostname: str) -> str:
    """`<id@host>`, the same for every attempt (and every variant) of one stored message; both
    halves are reduced to RFC 5322 dot-atoms whatever the inputs."""
    return f"<{_dot_atom(stored_id, _ATEXT) or 'message'}@{_dot_atom(hostname, _HOST) or 'mxrelay.invalid'}>"


_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_HOST = re.compile(r"[^A-Za-z0-9.-]")


def _dot_atom(text: str, invalid: re.Pattern[str]) -> str:
    return re.sub(r"\.{2,}", ".", invalid.sub("", text)).strip(".")


def complete_headers(
    data: bytes, *, stored_id: str, hostname: str, received_at: datetime, sender: str | None
) -> bytes:
    """Add the From, Date and Message-ID a message lacks, in front of its header block.

    From is the envelope sender (or the sending mailbox when the envelope is null), written only
    when it is an RFC 5322 addr-spec (`header_address`): envelope text never reaches a header
    unchecked, and without a From Exchange shows the sending mailbox. Date is when the relay
    accepted the message; Message-ID derives from the stored message id. Existing fields and the
    rest of the message keep their exact bytes; a complete message comes back unchanged (the
    same object).
    """
    present = field_names(data)
    end, _ = header_region(data, len(data))
    newline = b"\r\n" if b"\r\n" in data[: end + 2] or not data else b"\n"
    added: list[bytes] = []
    if "from" not in present and sender and header_address(sender):
        added.append(b"From: " + sender.encode("utf-8") + newline)
    if "date" not in present:
        added.append(b"Date: " + format_datetime(received_at).encode("ascii") + newline)
    if "message-id" not in present:
        added.append(
            b"Message-ID: " + message_id_for(stored_id, hostname).encode("ascii") + newline
        )
    if not added:
        return data
    first_line = data.split(b"\n", 1)[0]
    if not data.startswith((b"\r\n", b"\n")) and not _FIELD_NAME.match(first_line):
        return b"".join(added) + newline + data  # no header block at all: body only
    return b"".join(added) + data


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_QUOTED = r'"(?:[ !#-\[\]-~\u0080-\U0010ffff]|\\[ -~\u0080-\U0010ffff])*"'
_ADDR_SPEC = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|\[[!-Z^-~]*\])")


def header_address(text: str) -> bool:
    """Is `text` an addr-spec (RFC 5322 3.4.1, UTF-8 per RFC 6532) that can be written into a
    header field as it is? No CR, LF or other control character, quoted or not, so it can
    neither end the field nor add one (a bare CR in an envelope sender once became a Bcc:)."""
    return (
        len(text) <= 320
        and _ADDR_SPEC.fullmatch(text) is not None
        and all(c.isascii() or c.isprintable() for c in text)
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one attempt sends: the same bytes and the same mailbox on every attempt."""

    data: bytes
    mailbox: str
    changes: HeaderResult | None
    """The To/Cc/Bcc reconciliation, when it changed anything (for the metrics)."""


def prepare(
    job: DeliveryJob, reconciled: HeaderResult, settings: Settings, *, now: datetime
) -> Prepared:
    """The bytes Graph gets and the mailbox that sends them, from the job and its headers made to
    agree with the envelope (`mime.headers.reconcile_headers`); `PermanentFailure` when the message
    can never go. `now` dates a message whose acceptance time is unknown."""
    graph = settings.graph
    if reconciled.report.unreadable is not None:
        raise PermanentFailure(
            f"the headers cannot be checked against the envelope: {reconciled.report.unreadable}"
        )
    if reconciled.refused:
        raise PermanentFailure(
            "refused by MXRELAY_HEADER_RECIPIENTS=reject: the headers name recipients the "
            f"relay did not accept ({reconciled.report.describe()})"
        )
    # The From as read at accept time (reconciliation never changes it), else read now.
    author = (
        stored_author(job.header_from)
        if job.header_from is not None
        else header_from(reconciled.data)
    )
    mailbox = choose_mailbox(
        graph.mailbox, MailboxSource(graph.mailbox_from), job.mail_from, author
    )
    if mailbox is None:
        raise PermanentFailure(
            "no sending mailbox: the message has neither a From address nor an envelope "
            "sender; set MXRELAY_GRAPH_MAILBOX"
        )
    if not sender_allowed(job.mail_from, author or mailbox, graph.allowed_senders):
        raise PermanentFailure("the sender is not in MXRELAY_GRAPH_ALLOWED_SENDERS")
    data = complete_headers(
        reconciled.data,
        stored_id=job.message_id,
        hostname=settings.service.hostname,
        received_at=received_at(job, now),
        sender=job.mail_from.strip("<> ") or mailbox,
    )
    limit = graph.max_message_size
    if over_graph_size(len(job.data), limit):
        raise PermanentFailure(
            f"the message ({len(job.data)} bytes with the relay's Received field) is larger "
            f"than MXRELAY_GRAPH_MAX_MESSAGE_SIZE ({limit} bytes)"
        )
    return Prepared(data, mailbox, reconciled if reconciled.report.changes else None)


def received_at(job: DeliveryJob, now: datetime) -> datetime:
    """When the relay accepted the message: recorded, else the time in its ULID, else `now`."""
    if job.received_at is not None:
        return job.received_at
    try:  # the store's ids are ULIDs, which carry the time they were made
        return ULID.from_str(job.message_id).datetime
    except ValueError:
        return now
