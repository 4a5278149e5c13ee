"""Turning an accepted SMTP transaction into the rows the store keeps (pure: no I/O).

`build_record()` computes everything that is written at accept time: the hash and the compressed
bytes, the header fields worth listing and searching (subject, From, To, Message-ID, a snippet and the
text body), the relay's `Received:` header (`trace.py`), and the delivery variants. The header and
body parsing uses the standard library's `email` package with the lenient `compat32` policy: a
malformed message is still accepted and stored byte for byte; only its summary fields stay empty.
"""

from __future__ import annotations

import binascii
import email
import email.errors
import email.header
import email.message
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
MAX_WINDOW_BITS = 15
MIN_WINDOW_BITS = 9


def compress_body(data: bytes) -> bytes:
    """zlib with a window no larger than the message: for the typical few-kilobyte message,
    setting up zlib's full 32 KiB window and hash table costs ten times the compression itself,
    and a window that covers the whole message compresses it just as well. `zlib.decompress`
    reads any window size."""
    bits = max(MIN_WINDOW_BITS, min(MAX_WINDOW_BITS, (len(data) - 1).bit_length()))
    memory = max(1, min(zlib.DEF_MEM_LEVEL, bits - 7))  # a hash table sized like the window
    compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, bits, memory)
    return compressor.compress(data) + compressor.flush()


def collapse_spaces(text: str) -> str:
    """Runs of whitespace as one space, none at the ends. `str.split()` splits on exactly the
    characters the pattern `\\s+` matches, at a fraction of a regex substitution's cost (which
    was the largest share of building a record)."""
    return " ".join(text.split())


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
    lease: tuple[str, float] | None = None
    """(owner, expiry): the entries are created leased to this process's worker, which delivers
    them straight from memory (no claim, no read); see `sink.Dispatcher`."""

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
    return collapse_spaces(text)


_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*)$")
_CHARSET = re.compile(r"""charset\s*=\s*"?([^";\s]+)""", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")


def header_fields(block: bytes) -> dict[str, list[str]]:
    """Header fields by lower-case name, unfolded, in order.

    Hand-written rather than `email.parser`: the summary needs six fields, and the standard parser
    costs several times more per message on the accept path; anything unusual in the body goes to
    the standard parser below."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current:
                current[-1] += " " + line.strip().decode("utf-8", "replace")
            continue
        match = _FIELD.match(line)
        if match is None:
            current = None
            continue
        current = fields.setdefault(match.group(1).decode("ascii").lower(), [])
        current.append(match.group(2).decode("utf-8", "replace"))
    return fields


def _first(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _addresses(fields: dict[str, list[str]], name: str) -> str:
    """The addresses in a header, in order. A pattern, not `email.utils.getaddresses`: for a
    listing and an index it is enough, it never raises, and it costs a fraction of the parser."""
    return ", ".join(a for value in fields.get(name, ()) for a in _ADDRESS.findall(value))


def _decode_body(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _single_text(fields: dict[str, list[str]], body: bytes) -> str | None:
    """The text of a message that is one text part, or None when the full parser is needed."""
    content_type = _first(fields, "content-type") or "text/plain"
    kind = content_type.split(";", 1)[0].strip().lower()
    if not kind.startswith("text/"):
        return None
    encoding = (_first(fields, "content-transfer-encoding") or "7bit").strip().lower()
    try:
        if encoding == "quoted-printable":
            body = binascii.a2b_qp(body)
        elif encoding == "base64":
            body = binascii.a2b_base64(body)
        elif encoding not in ("7bit", "8bit", "binary"):
            return None
    except (binascii.Error, ValueError):
        return None
    charset = _CHARSET.search(content_type)
    text = _decode_body(body, charset.group(1) if charset else None)
    return _TAGS.sub(" ", text) if kind == "text/html" else text


def _text_of(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return _decode_body(payload, part.get_content_charset())


def _walk(data: bytes) -> tuple[str, int]:
    """(text, attachments) of a multipart or encoded message, through the standard parser."""
    try:
        message = email.message_from_bytes(data)
    except (email.errors.MessageError, ValueError, LookupError, UnicodeError):
        return "", 0
    text = html = ""
    attachments = 0
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
    return (text or _TAGS.sub(" ", html)), attachments


def summarise(data: bytes) -> Summary:
    """Header fields and text body for listing and search; never raises on malformed input."""
    end = data.find(b"\r\n\r\n")
    head, body = (data, b"") if end < 0 else (data[: end + 2], data[end + 4 :])
    fields = header_fields(head)
    text = _single_text(fields, body)
    attachments = 0
    if text is None:
        text, attachments = _walk(data)
    words = collapse_spaces(text)
    return Summary(
        subject=_decode(_first(fields, "subject")),
        header_from=_addresses(fields, "from"),
        header_to=_addresses(fields, "to"),
        message_id=_decode(_first(fields, "message-id")).strip("<>"),
        snippet=words[:SNIPPET_LENGTH],
        body_text=words[:SEARCH_TEXT_LIMIT],
        attachments=attachments,
    )


def build_record(
    transaction: Transaction,
    *,
    message_id: str,
    hostname: str,
    hold_reason: str | None = None,
    plan: Callable[[bytes, tuple[str, ...]], tuple[VariantPlan, ...]] = plan_variants,
    render: Callable[[bytes, tuple[str, ...]], bytes] = render_variant,
) -> NewMessage:
    """All rows of one accepted message. CPU-bound (hash, compress, parse): large messages should
    be handed to a thread by the caller."""
    data = transaction.data
    received_at = transaction.received_at
    prefix = received_header(transaction, hostname=hostname, queue_id=message_id)
    variants = plan(data, transaction.recipients)
    sizes = []
    for variant in variants:
        sent = prefix + render(data, variant.transforms)
        sizes.append((variant.variant, len(sent), hashlib.sha256(sent).hexdigest()))
    return NewMessage(
        id=message_id,
        received_at=received_at.timestamp(),
        transaction=transaction,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        compressed=compress_body(data),
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
