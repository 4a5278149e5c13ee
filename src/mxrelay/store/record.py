"""Turning an accepted SMTP transaction into the rows the store keeps (pure: no I/O).

`build_record()` computes everything that is written at accept time: the hash and the compressed
bytes, the header fields worth listing and searching (subject, From, To, Message-ID, a snippet and the
text body), the relay's `Received:` header (`trace.py`), and the delivery variants. The header and
body parsing uses the standard library's `email` package with the lenient `compat32` policy: a
malformed message is still accepted and stored byte for byte; only its summary fields stay empty.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.message
import email.parser
import email.utils
import hashlib
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from mxrelay.model import Transaction
from mxrelay.store.variants import VariantPlan, plan_variants, render_variant
from mxrelay.trace import received_header

SNIPPET_LENGTH = 250
"""Mailpit's `Snippet`: up to 250 characters of body text."""

SEARCH_TEXT_LIMIT = 64 * 1024
"""Characters of body text put in the full-text index (enough to find a message by its words)."""

COMPRESSION_LEVEL = 6
BODY_ENCODING = "zlib"

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Summary:
    subject: str = ""
    header_from: str = ""
    header_to: str = ""
    message_id: str = ""
    snippet: str = ""
    body_text: str = ""
    attachments: int = 0


@dataclass(frozen=True, slots=True)
class NewMessage:
    """Every row written for one accepted message, its variants, recipients and queue entries."""

    id: str
    received_at: float
    transaction: Transaction
    size: int
    sha256: str
    compressed: bytes
    encoding: str
    summary: Summary
    received_header: str
    """The relay's `Received:` field, CRLF included: prepended to every delivery attempt."""
    variants: tuple[VariantPlan, ...]
    variant_sizes: tuple[tuple[int, int, str], ...]
    """(variant, size, SHA-256) of the bytes each variant sends, `Received:` header included."""
    hold_reason: str | None = None
    """Set in `hold` mode: the queue entries are created held, with this reason."""

    @property
    def transforms(self) -> str:
        return json.dumps(sorted({t for v in self.variants for t in v.transforms}))


def _decode(value: str | None) -> str:
    if not value:
        return ""
    text = value
    if "=?" in value:  # RFC 2047 encoded words; plain headers skip the decoder
        try:
            text = str(email.header.make_header(email.header.decode_header(value)))
        except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
            text = value
    return _SPACES.sub(" ", text).strip()


_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")


def _addresses(message: email.message.Message, name: str) -> str:
    """The addresses in a header, in order. A pattern, not `email.utils.getaddresses`: for a
    listing and an index it is enough, it never raises, and it costs a fraction of the parser."""
    found: list[str] = []
    for value in message.get_all(name, []):
        found.extend(_ADDRESS.findall(str(value)))
    return ", ".join(found)


def _text_of(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _decode_body(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _parse(data: bytes) -> tuple[email.message.Message, str | None]:
    """The message and, for the common single unencoded text part, its text.

    Only the header is parsed in that case (the body is taken as it is); multipart and encoded
    content go through the whole parser."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head = email.parser.BytesHeaderParser().parsebytes(data[: end + 2])
        encoding = (head.get("Content-Transfer-Encoding") or "7bit").strip().lower()
        if head.get_content_maintype() == "text" and encoding in ("7bit", "8bit", "binary"):
            text = _decode_body(data[end + 4 :], head.get_content_charset())
            if head.get_content_subtype() == "html":
                text = re.sub(r"<[^>]*>", " ", text)
            return head, text
    return email.message_from_bytes(data), None


def summarise(data: bytes) -> Summary:
    """Header fields and text body for listing and search; never raises on malformed input."""
    try:
        message, text = _parse(data)
    except (email.errors.MessageError, ValueError, LookupError, UnicodeError):
        return Summary()
    html = ""
    attachments = 0
    if text is None:
        text = ""
        for part in message.walk():
            if part.is_multipart():
                continue
            disposition = (part.get("Content-Disposition") or "").lower()
            content_type = part.get_content_type()
            if "attachment" in disposition or part.get_filename():
                attachments += 1
            elif content_type == "text/plain" and not text:
                text = _text_of(part)
            elif content_type == "text/html" and not html:
                html = _text_of(part)
    if not text and html:
        text = re.sub(r"<[^>]*>", " ", html)
    body = _SPACES.sub(" ", text).strip()
    message_id = _decode(message.get("Message-ID")).strip().strip("<>")
    return Summary(
        subject=_decode(message.get("Subject")),
        header_from=_addresses(message, "From"),
        header_to=_addresses(message, "To"),
        message_id=message_id,
        snippet=body[:SNIPPET_LENGTH],
        body_text=body[:SEARCH_TEXT_LIMIT],
        attachments=attachments,
    )


def build_record(
    transaction: Transaction,
    *,
    message_id: str,
    hostname: str,
    hold_reason: str | None = None,
    plan: Callable[[bytes, tuple[str, ...]], tuple[VariantPlan, ...]] = plan_variants,
) -> NewMessage:
    """All rows of one accepted message. CPU-bound (hash, compress, parse): large messages should
    be handed to a thread by the caller."""
    data = transaction.data
    received_at = transaction.received_at
    prefix = received_header(transaction, hostname=hostname, queue_id=message_id)
    variants = plan(data, transaction.recipients)
    sizes = []
    for variant in variants:
        sent = prefix + render_variant(data, variant.transforms)
        sizes.append((variant.variant, len(sent), hashlib.sha256(sent).hexdigest()))
    return NewMessage(
        id=message_id,
        received_at=received_at.timestamp(),
        transaction=transaction,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        compressed=zlib.compress(data, COMPRESSION_LEVEL),
        encoding=BODY_ENCODING,
        summary=summarise(data),
        received_header=prefix.decode("utf-8"),
        variants=variants,
        variant_sizes=tuple(sizes),
        hold_reason=hold_reason,
    )


def decompress(encoding: str, raw: bytes) -> bytes:
    if encoding == BODY_ENCODING:
        return zlib.decompress(raw)
    if encoding == "identity":
        return raw
    raise ValueError(f"unknown body encoding {encoding!r}")
