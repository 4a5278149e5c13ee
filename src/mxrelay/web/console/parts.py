"""A stored message read for display: its leaf parts numbered as IMAP (and Mailpit) number them,
its header fields, and its HTML body made ready for the sandboxed preview.

Pure functions of the stored bytes, bounded by `mime.parse`'s limits and by the limits below.
The HTML is never cleaned into something "safe": it is shown only in a frame whose policy lets
nothing run or load (`policy.preview`). Two changes are made all the same: `cid:` references
become the images they name, as `data:` URLs, and `<meta http-equiv>` elements are removed,
because a refresh would let the frame navigate itself, a remote load the policy cannot forbid.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from mxrelay.mime.content import body_text
from mxrelay.mime.parse import (
    DEFAULT_LIMITS,
    Entity,
    MimeStructureError,
    field_value,
    parse_message,
    scan_headers,
)
from mxrelay.mime.text import decode_transfer, decode_words

HTML_LIMIT = 2 * 1024 * 1024
"""Decoded bytes of the HTML body the preview shows."""

INLINE_BUDGET = 8 * 1024 * 1024
"""Decoded bytes of inline images the preview embeds (the frame loads nothing from the relay:
as a sandboxed, opaque-origin document it could not read the relay's same-origin parts)."""

HEADER_VALUE_LIMIT = 16 * 1024
"""Characters shown of one header field's value."""

INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Image types shown in the page itself. SVG is not among them: it is a document that can hold
script, so it is only ever downloaded."""

_REFRESH = re.compile(r"<meta[^<>]{0,2000}http-equiv[^<>]{0,2000}>", re.I)
_CID = re.compile(r"""(["'(]\s*)cid:([^"')\s>]{1,998})""", re.I)
_REMOTE = re.compile(
    r"""(?:src|background|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)


@dataclass(frozen=True, slots=True)
class Part:
    """A leaf part: `part_id` as IMAP numbers it (`1`, `2.1`)."""

    part_id: str
    content_type: str
    filename: str
    disposition: str | None
    content_id: str
    size: int
    """Encoded size in bytes (the decoded size is about 3/4 of it for base64)."""

    @property
    def is_attachment(self) -> bool:
        return bool(self.filename) or self.disposition == "attachment"

    @property
    def is_inline_image(self) -> bool:
        return self.content_type in INLINE_IMAGE_TYPES


def _content_id(data: bytes, entity: Entity) -> str:
    fields = entity.fields_named("content-id")
    return field_value(data, fields[0]).strip().strip("<>")[:998] if fields else ""


def leaf_parts(data: bytes) -> tuple[list[tuple[Part, Entity]], str | None]:
    """Every leaf part in document order with its entity, and why the structure could not be
    read (then no parts)."""
    try:
        root = parse_message(data, limits=DEFAULT_LIMITS)
    except MimeStructureError as exc:
        return [], str(exc)
    found: list[tuple[Part, Entity]] = []
    stack: list[tuple[str, Entity]] = [("", root)]
    while stack:
        number, entity = stack.pop()
        if entity.is_multipart:
            children = [
                (f"{number}.{i}" if number else str(i), child)
                for i, child in enumerate(entity.children, start=1)
            ]
            stack.extend(reversed(children))
            continue
        part = Part(
            part_id=number or "1",
            content_type=entity.content_type,
            filename=entity.filename or "",
            disposition=entity.disposition,
            content_id=_content_id(data, entity),
            size=entity.end - entity.body_start,
        )
        found.append((part, entity))
    return found, None


def part_body(data: bytes, entity: Entity, limit: int) -> bytes:
    """A part's body, transfer-decoded, at most `limit` bytes."""
    fields = entity.fields_named("content-transfer-encoding")
    encoding = field_value(data, fields[0]) if fields else ""
    return decode_transfer(data[entity.body_start : entity.end], encoding, limit)


def header_fields(data: bytes) -> list[tuple[str, str]]:
    """The message's header fields in order, as (name, decoded value)."""
    block = scan_headers(data)
    return [
        (field.name, decode_words(field_value(data, field)[:HEADER_VALUE_LIMIT]))
        for field in block.fields
    ]


@dataclass(frozen=True, slots=True)
class Preview:
    html: str
    remote: int
    """References to remote resources (images, styles) the policy blocks unless asked."""


def html_preview(data: bytes) -> Preview | None:
    """The first HTML body, its `cid:` references replaced by the images they name as `data:`
    URLs (raster images only, within `INLINE_BUDGET`), or None when there is no HTML body."""
    parts, _ = leaf_parts(data)
    html_entity = next(
        (e for p, e in parts if p.content_type == "text/html" and not p.is_attachment), None
    )
    if html_entity is None:
        return None
    html = _REFRESH.sub("", body_text(data, html_entity, HTML_LIMIT))
    by_cid = {p.content_id.lower(): (p, e) for p, e in parts if p.content_id}
    budget = [INLINE_BUDGET]

    def cid(match: re.Match[str]) -> str:
        found = by_cid.get(match.group(2).lower())
        if found is None or not found[0].is_inline_image or budget[0] <= 0:
            return match.group(1) + "about:blank"
        body = part_body(data, found[1], budget[0])
        budget[0] -= len(body)
        encoded = base64.b64encode(body).decode("ascii")
        return f"{match.group(1)}data:{found[0].content_type};base64,{encoded}"

    html = _CID.sub(cid, html)
    return Preview(html, len(_REMOTE.findall(html)))
