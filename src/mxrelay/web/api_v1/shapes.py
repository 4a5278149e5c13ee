"""Mailpit's JSON shapes for what the store keeps: a message summary (the list) and a message.

Mailpit's field names are kept (PascalCase in message objects); a Mailpit object carries exactly
Mailpit's keys, and what mxrelay adds has routes of its own (`deliveries.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mxrelay.mime.addresses import NamedAddress, split_list
from mxrelay.mime.content import message_content
from mxrelay.store.message_log import MessageView
from mxrelay.store.search import MessageSummary
from mxrelay.web.api_v1.context import rfc3339


def addresses(stored: str) -> list[dict[str, str]]:
    """Mailpit's address objects for a stored address list (addr-specs, comma-separated: the
    summary kept no display names). Split by one regular expression, not parsed again."""
    return [{"Name": "", "Address": address} for address in split_list(stored)]


def sender(header_from: str, mail_from: str) -> dict[str, str]:
    """Mailpit's `From`: the header's first address, else the envelope sender."""
    found = addresses(header_from)
    return found[0] if found else {"Name": "", "Address": mail_from}


def mailbox(named: NamedAddress) -> dict[str, str]:
    """Mailpit's address object."""
    return {"Name": named[0], "Address": named[1]}


def mailboxes(named: Sequence[NamedAddress]) -> list[dict[str, str]]:
    return [mailbox(item) for item in named]


def go_time(timestamp: float) -> str:
    """A time as Mailpit's JSON has it (Go's RFC 3339 with nanoseconds, of a time Mailpit keeps
    to the millisecond): `2024-05-01T13:00:00.25Z`, the fraction's trailing zeros dropped."""
    milliseconds = round(timestamp * 1_000_000) // 1000
    moment = datetime.fromtimestamp(milliseconds // 1000, UTC)
    fraction = f".{milliseconds % 1000:03d}".rstrip("0").rstrip(".")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def summary(message: MessageSummary) -> dict[str, Any]:
    """Mailpit's MessageSummary: exactly its keys, in its order. The address lists are arrays
    (Mailpit's list answers `null` for an empty one; its documentation, its live events and
    the typed clients have arrays)."""
    lists = message.addresses
    return {
        "ID": message.id,
        "MessageID": message.message_id_header,
        "Read": message.seen,
        "From": mailbox(lists.sender),
        "To": mailboxes(lists.to),
        "Cc": mailboxes(lists.cc),
        "Bcc": mailboxes(lists.bcc),
        "ReplyTo": mailboxes(lists.reply_to),
        "Subject": message.subject,
        "Created": go_time(message.received_at),
        "Username": message.username or "",
        "Tags": list(message.tags),
        "Size": message.size,
        "Attachments": message.attachments,
        "Snippet": message.snippet,
    }


VIEW_TEXT_LIMIT = 1024 * 1024
"""Decoded bytes of the text and of the HTML body shown in the message view (the whole message
is always at `/raw`)."""


def bodies(raw: bytes | None) -> tuple[str, str, list[dict[str, Any]]]:
    """Text body, HTML body and attachment list of a stored message (empty once pruned, or when
    its MIME structure is broken); bounded work (`mime.content`), never raises."""
    if raw is None:
        return "", "", []
    content = message_content(raw, VIEW_TEXT_LIMIT)
    files = [
        {"FileName": a.filename, "ContentType": a.content_type, "Size": a.size}
        for a in content.attachments
    ]
    return content.text, content.html, files


def message(view: MessageView, raw: bytes | None) -> dict[str, Any]:
    text, html, files = bodies(raw)
    return {
        "ID": view.id,
        "MessageID": view.message_id_header.strip("<>"),
        "From": sender(view.header_from, view.mail_from),
        "To": addresses(view.header_to),
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "ReturnPath": view.mail_from,
        "Subject": view.subject,
        "Date": rfc3339(view.received_at),
        "Tags": [],
        "Username": view.username or "",
        "Text": text,
        "HTML": html,
        "Size": view.size,
        "Inline": [],
        "Attachments": files,
        "SHA256": view.sha256,
        "Client": {"Address": view.client_address, "Helo": view.helo, "TLS": view.tls_version},
        "BodyPruned": view.body_pruned,
    }
