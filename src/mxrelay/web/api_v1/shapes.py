"""Mailpit's JSON shapes for what the store keeps: a message summary (the list) and a message.

Mailpit's field names are kept (PascalCase in message objects); a Mailpit object carries exactly
Mailpit's keys, and what mxrelay adds has routes of its own (`deliveries.py`).
"""

from __future__ import annotations

from typing import Any

from mxrelay.mime.addresses import split_list
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


def summary(message: MessageSummary) -> dict[str, Any]:
    return {
        "ID": message.id,
        "MessageID": message.message_id_header.strip("<>"),
        "Read": message.seen,
        "From": sender(message.header_from, message.mail_from),
        "To": addresses(message.header_to),
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "Subject": message.subject,
        "Created": rfc3339(message.received_at),
        "Username": message.username or "",
        "Tags": [],
        "Size": message.size,
        "Attachments": message.attachments,
        "Snippet": message.snippet,
        "ReturnPath": message.mail_from,
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
