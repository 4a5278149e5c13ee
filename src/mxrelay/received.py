"""The relay's `Received:` trace field (RFC 5321 4.4), built as bytes from the transaction.

Pure: the same transaction, host name, id and time always give the same bytes, so a stored header
can be rebuilt or compared. Only one recipient is named (`for <…>`), and only when there is exactly
one, so a multi-recipient message does not disclose its Bcc list to every recipient.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from mxrelay.model import Transaction


def protocol_name(transaction: Transaction) -> str:
    """`with` keyword per RFC 3848 / RFC 6531: ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP…"""
    session = transaction.session
    if not session.esmtp:
        return "SMTP"
    base = "UTF8SMTP" if transaction.smtputf8 else "ESMTP"
    suffix = ("S" if session.tls else "") + ("A" if session.username else "")
    return base + suffix


def received_header(
    transaction: Transaction, *, hostname: str, queue_id: str, when: datetime | None = None
) -> bytes:
    session = transaction.session
    helo = _clean(session.helo) or "unknown"
    address = session.peer.host
    literal = f"IPv6:{address}" if ":" in address else address
    lines = [f"Received: from {helo} (unknown [{literal}])"]
    tls = (
        f"\r\n\t(using {session.tls.version} with cipher {session.tls.cipher})"
        if session.tls
        else ""
    )
    lines.append(f"\tby {hostname} (mxrelay) with {protocol_name(transaction)} id {queue_id}{tls}")
    stamp = format_datetime(when or transaction.received_at)
    if len(transaction.recipients) == 1:
        lines.append(f"\tfor <{_clean(transaction.recipients[0])}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _clean(text: str) -> str:
    """Keep client-supplied text from breaking the header (no CR/LF, no unbalanced parens)."""
    if text.isprintable() and "(" not in text and ")" not in text:  # the usual case, at once
        return text[:255]
    return "".join(c for c in text if c.isprintable() and c not in "()\r\n")[:255]
