"""The header fields Mailpit's SMTP server would have written from the envelope, computed, not stored.

Mailpit rewrites a message as it stores it: `Return-Path: <envelope sender>` (replacing the first
Return-Path field, or added when there is none) and the envelope recipients that no To, Cc or Bcc
field names (blind copies) added to Bcc (before the addresses of the first Bcc field, or as a new
field). Its API then shows those fields, and its clients rely on them (a blind recipient appears
in `Bcc`). The relay keeps the bytes it received unchanged and computes the same fields from the
envelope when it shows a message; nothing here changes a stored message.
"""

from __future__ import annotations

from collections.abc import Iterable

from mxrelay.mime.fields import Fields
from mxrelay.mime.mailboxes import mailboxes


def blind_recipients(fields: Fields, recipients: Iterable[str]) -> list[str]:
    """Envelope recipients that the first To, Cc and Bcc fields do not name (compared without
    case), in envelope order, each once."""
    named = {
        box.address.lower() for name in ("To", "Cc", "Bcc") for box in mailboxes(fields.get(name))
    }
    missing: list[str] = []
    for address in recipients:
        if address and address.lower() not in named and address not in missing:
            missing.append(address)
    return missing


def with_envelope(fields: Fields, mail_from: str, recipients: Iterable[str]) -> Fields:
    """`fields` with Return-Path and Bcc as Mailpit's SMTP server would have written them."""
    items = list(fields.items)
    current = fields.get("Return-Path").strip("<>")
    if current != mail_from:
        value = f"<{mail_from}>"
        index = next((i for i, (name, _) in enumerate(items) if name == "Return-Path"), None)
        if current and index is not None:
            items[index] = ("Return-Path", value)
        elif not current:
            items.insert(0, ("Return-Path", value))
    missing = blind_recipients(fields, recipients)
    if missing:
        joined = ", ".join(missing)
        index = next((i for i, (name, _) in enumerate(items) if name == "Bcc"), None)
        if index is None:
            items.insert(0, ("Bcc", joined))
        else:
            items[index] = ("Bcc", f"{joined}, {items[index][1]}")
    return Fields(tuple(items), fields.body_start)
