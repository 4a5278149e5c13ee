"""Mailpit's JSON shapes for what the store keeps: a message summary (the list) and a message.

Mailpit's field names are kept (PascalCase in message objects); a Mailpit object carries exactly
Mailpit's keys, and what mxrelay adds has routes of its own (`deliveries.py`).
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mxrelay.mime.addresses import NamedAddress, split_list
from mxrelay.mime.envelope_fields import with_envelope
from mxrelay.mime.fields import Fields, read_fields
from mxrelay.mime.mailboxes import Mailbox, mailboxes
from mxrelay.mime.parts import Attachment, Reading, read_parts
from mxrelay.mime.text import decode_words
from mxrelay.mime.unsubscribe import list_unsubscribe
from mxrelay.store.message_log import MessageView
from mxrelay.store.search import MessageSummary


def addresses(stored: str) -> list[dict[str, str]]:
    """Mailpit's address objects for a stored address list (addr-specs, comma-separated: the
    summary kept no display names). Split by one regular expression, not parsed again."""
    return [{"Name": "", "Address": address} for address in split_list(stored)]


def sender(header_from: str, mail_from: str) -> dict[str, str]:
    """Mailpit's `From`: the header's first address, else the envelope sender."""
    found = addresses(header_from)
    return found[0] if found else {"Name": "", "Address": mail_from}


def named_mailbox(named: NamedAddress) -> dict[str, str]:
    """Mailpit's address object."""
    return {"Name": named[0], "Address": named[1]}


def named_mailboxes(named: Sequence[NamedAddress]) -> list[dict[str, str]]:
    return [named_mailbox(item) for item in named]


def created_time(timestamp: float) -> str:
    """A time as Mailpit's JSON has it (Go's RFC 3339 with nanoseconds, of a time Mailpit keeps
    to the millisecond): `2024-05-01T13:00:00.25Z`, the fraction's trailing zeros dropped."""
    milliseconds = round(timestamp * 1_000_000) // 1000
    moment = datetime.fromtimestamp(milliseconds // 1000, UTC).replace(tzinfo=None)
    fraction = f".{milliseconds % 1000:03d}".rstrip("0").rstrip(".")
    return moment.isoformat() + fraction + "Z"  # whole seconds: isoformat has no fraction


def summary(message: MessageSummary) -> dict[str, Any]:
    """Mailpit's MessageSummary: exactly its keys, in its order. The address lists are arrays
    (Mailpit's list answers `null` for an empty one; its documentation, its live events and
    the typed clients have arrays)."""
    lists = message.addresses
    return {
        "ID": message.id,
        "MessageID": message.message_id_header,
        "Read": message.seen,
        "From": named_mailbox(lists.sender),
        "To": named_mailboxes(lists.to),
        "Cc": named_mailboxes(lists.cc),
        "Bcc": named_mailboxes(lists.bcc),
        "ReplyTo": named_mailboxes(lists.reply_to),
        "Subject": message.subject,
        "Created": created_time(message.received_at),
        "Username": message.username or "",
        "Tags": list(message.tags),
        "Size": message.size,
        "Attachments": message.attachments,
        "Snippet": message.snippet,
    }


DATE_FIELD_LIMIT = 256
"""Characters of a Date field that are parsed (a real one has about 40)."""


def envelope_recipients(view: MessageView) -> list[str]:
    """The accepted recipients of a message, in envelope order, each once."""
    return list(dict.fromkeys(recipient.address for recipient in view.recipients))


def message_fields(view: MessageView, reading: Reading | None) -> Fields:
    """The message's own header fields, with Return-Path and Bcc as Mailpit would have written
    them from the envelope (`mime.envelope_fields`)."""
    own = reading.root.fields if reading is not None else Fields((), 0)
    return with_envelope(own, view.mail_from, envelope_recipients(view))


def go_time(moment: datetime) -> str:
    """A time as Go's JSON encoder writes it (RFC 3339, fraction without trailing zeros, `Z` for
    UTC)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def message_date(fields: Fields, received_at: float) -> str:
    """Mailpit's `Date`: the Date field, else the time the message was received (to the
    millisecond, as Mailpit keeps it)."""
    value = fields.get("Date")[:DATE_FIELD_LIMIT]
    if value:
        try:
            return go_time(email.utils.parsedate_to_datetime(value))
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    received = datetime.fromtimestamp(round(received_at, 3), UTC)
    return go_time(received)


def mailbox(box: Mailbox) -> dict[str, str]:
    return {"Name": box.name, "Address": box.address}


def attachment(part: Attachment) -> dict[str, Any]:
    return {
        "PartID": part.part_id,
        "FileName": part.filename,
        "ContentType": part.content_type,
        "ContentID": part.content_id,
        "Size": part.size,
        "Checksums": {"MD5": part.md5, "SHA1": part.sha1, "SHA256": part.sha256},
    }


def message(view: MessageView, raw: bytes | None, tags: Sequence[str] = ()) -> dict[str, Any]:
    """Mailpit's `Message`, with exactly its keys. CPU work proportional to the message (its
    parts are decoded and hashed): callers run it in a thread. A message whose body was pruned
    shows what the log kept of it."""
    reading = read_parts(raw) if raw is not None else None
    fields = message_fields(view, reading)
    found_from = mailboxes(fields.get("From"))
    kept_from = split_list(view.header_from) if reading is None else []
    if found_from:
        sender = mailbox(found_from[0])
    elif kept_from:
        sender = {"Name": "", "Address": kept_from[0]}
    else:
        sender = {"Name": decode_words(fields.get("From")), "Address": ""}
    unsubscribe = list_unsubscribe(
        decode_words(fields.get("List-Unsubscribe")),
        decode_words(fields.get("List-Unsubscribe-Post")),
    )
    subject = decode_words(fields.get("Subject")) if reading else view.subject
    message_id = fields.get("Message-Id") if reading else view.message_id_header
    return {
        "ID": view.id,
        "MessageID": decode_words(message_id).strip("<>"),
        "From": sender,
        "To": [mailbox(box) for box in mailboxes(fields.get("To"))],
        "Cc": [mailbox(box) for box in mailboxes(fields.get("Cc"))],
        "Bcc": [mailbox(box) for box in mailboxes(fields.get("Bcc"))],
        "ReplyTo": [mailbox(box) for box in mailboxes(fields.get("Reply-To"))],
        "ReturnPath": view.mail_from or sender["Address"],
        "Subject": subject,
        "ListUnsubscribe": {
            "Header": unsubscribe.header,
            "Links": list(unsubscribe.links),
            "Errors": unsubscribe.errors,
            "HeaderPost": unsubscribe.header_post,
        },
        "Date": message_date(fields, view.received_at),
        "Tags": list(tags),
        "Username": view.username or "",
        "Text": reading.text if reading else "",
        "HTML": reading.html if reading else "",
        "Size": len(raw) if raw is not None else view.size,
        "Inline": [attachment(Attachment.of(p)) for p in reading.inline] if reading else [],
        "Attachments": (
            [attachment(Attachment.of(p)) for p in reading.attachments] if reading else []
        ),
    }


def headers(view: MessageView, raw: bytes) -> dict[str, list[str]]:
    """Mailpit's headers object: Go-canonical names (sorted) → values, Return-Path and Bcc as
    Mailpit would have written them from the envelope."""
    own = read_fields(raw)
    return with_envelope(own, view.mail_from, envelope_recipients(view)).as_map()
