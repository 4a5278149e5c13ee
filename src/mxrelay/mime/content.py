"""What a reader sees in a message: its text and HTML bodies and its attachments, read with bounds.

For the message log (summaries and search at accept time, the API's message view), never for
delivery. The MIME tree comes from the byte scanner (`parse.py`, within `MimeLimits`), not from
the standard library's parser, which recurses once per nesting level (a thousand nested
multiparts raise `RecursionError`) and reads parameters with a parser whose cost grows with the
square of the number of encoded words. Bodies are decoded with `text.py`: at most `limit` bytes
each, in text charsets only. Broken MIME (what the scanner refuses) has no bodies and no
attachments here; the message itself is kept and delivered byte for byte all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mxrelay.mime.parse import (
    DEFAULT_LIMITS,
    Entity,
    MimeStructureError,
    field_value,
    parse_message,
)
from mxrelay.mime.text import decode_text, decode_transfer

_CHARSET = re.compile(r"""charset\s*=\s*"?([^";\s]+)""", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]*>")
"""A tag, for stripping HTML to words: `[^<>]`, not `[^>]`, so that a run of `<` without `>` costs
linear time, not quadratic."""
_WHITESPACE = re.compile(rb"[ \t\r\n]+")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    """Decoded size in bytes (computed from the encoded length, without decoding)."""


@dataclass(frozen=True, slots=True)
class Content:
    text: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    inlines: tuple[Attachment, ...] = ()
    """Parts shown in the body rather than attached (`Content-Disposition: inline` with a file
    name or a type other than text), apart from the attachments as Mailpit counts them."""
    broken: str | None = None
    """Why the MIME structure could not be read (then everything else is empty)."""


def strip_tags(html: str) -> str:
    return _TAGS.sub(" ", html)


def message_content(data: bytes, limit: int) -> Content:
    """The first text/plain and text/html bodies (at most `limit` decoded bytes each), every
    inline part (`Content-Disposition: inline` with a file name, or not text) and every other
    attachment (a part with a file name or `Content-Disposition: attachment`, and attached
    messages); never raises."""
    try:
        root = parse_message(data, limits=DEFAULT_LIMITS)
    except MimeStructureError as exc:
        return Content(broken=str(exc))
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    inlines: list[Attachment] = []
    stack = [root]
    while stack:  # document order, without recursion
        entity = stack.pop()
        if entity.is_multipart:
            stack.extend(reversed(entity.children))
            continue
        kind = entity.content_type
        if entity.disposition == "inline" and (entity.filenames or not kind.startswith("text/")):
            inlines.append(Attachment(entity.filename or "", kind, _decoded_size(data, entity)))
        elif entity.filenames or entity.disposition == "attachment" or kind == "message/rfc822":
            attachments.append(Attachment(entity.filename or "", kind, _decoded_size(data, entity)))
        elif kind == "text/plain" and text is None:
            text = body_text(data, entity, limit)
        elif kind == "text/html" and html is None:
            html = body_text(data, entity, limit)
    return Content(text or "", html or "", tuple(attachments), tuple(inlines))


def _encoding(data: bytes, entity: Entity) -> str:
    fields = entity.fields_named("content-transfer-encoding")
    return field_value(data, fields[0]).lower() if fields else ""


def body_text(data: bytes, entity: Entity, limit: int) -> str:
    """One part's body as text: transfer-decoded, then decoded in its charset (bounded)."""
    types = entity.fields_named("content-type")
    content_type = field_value(data, types[0]) if types else ""
    body = data[entity.body_start : entity.end]
    return decode_body(body, content_type, _encoding(data, entity), limit)


def decode_body(body: bytes, content_type: str, encoding: str, limit: int) -> str:
    """A body as text, given its Content-Type and Content-Transfer-Encoding values: at most
    `limit` bytes transfer-decoded, then decoded in the `charset` parameter (a text charset)."""
    raw = decode_transfer(body, encoding, limit)
    charset = _CHARSET.search(content_type[:1024])
    return decode_text(raw, charset.group(1) if charset else None)


def _decoded_size(data: bytes, entity: Entity) -> int:
    body = data[entity.body_start : entity.end]
    encoding = _encoding(data, entity)
    if encoding == "base64":
        payload = len(_WHITESPACE.sub(b"", body).rstrip(b"="))
        return payload * 3 // 4
    if encoding == "quoted-printable":
        return len(decode_transfer(body, encoding, len(body)))
    return len(body)
