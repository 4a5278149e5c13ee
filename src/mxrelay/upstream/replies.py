"""The upstream's replies, read once: code, enhanced status and text, and the queue id it names.

One reading for every caller: passthrough turns it into the reply its client gets, the smarthost
into per-recipient outcomes. The enhanced status (RFC 3463) counts only when its class agrees with
the reply code, as Postfix's smtp client reads it; otherwise it stays part of the text. Whitespace,
line breaks of a multi-line reply included, is folded to single spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiosmtplib

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s+")
_QUEUED_AS = re.compile(r"queued as\s+<?([A-Za-z0-9._@:+/=-]+)>?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    code: int
    enhanced: str
    """`"5.1.1"`, or `""` when the reply gave none (or one of another class than its code)."""
    text: str
    """The reply's text without the enhanced status, on one line."""


def parse_reply(code: int, message: str) -> UpstreamReply:
    """The reply `code` with `message` (aiosmtplib's text, lines joined by newlines)."""
    text = " ".join(message.split())
    match = _ENHANCED.match(text)
    if match and match.group(1)[0] == str(code)[0]:
        return UpstreamReply(code, match.group(1), text[match.end() :])
    return UpstreamReply(code, "", text)


def remote_id(text: str) -> str | None:
    """The upstream's queue id from its final reply ("250 2.0.0 Ok: queued as 4XyZ12")."""
    match = _QUEUED_AS.search(text)
    return match.group(1) if match else None


async def send_data(client: aiosmtplib.SMTP, message: bytes) -> UpstreamReply:
    """DATA, the message, and the reply to its end, whether the upstream took it or not
    (aiosmtplib raises a refusal; here it is a reply like any other)."""
    try:
        response = await client.data(message)
    except aiosmtplib.SMTPDataError as exc:
        return parse_reply(exc.code, exc.message)
    return parse_reply(response.code, response.message)
