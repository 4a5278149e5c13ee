"""A message's parts as Mailpit shows them: enmime's part tree, numbering and classification.

Mailpit reads a message with `jhillyerd/enmime`, and its API exposes the result: each part's
`PartID` (its place in the tree), the text and HTML bodies, and which parts are attachments and
which inline. Clients address parts by those ids (`/api/v1/message/{ID}/part/{PartID}`), so the
numbering and the classification here are enmime's:

- The message is part `0`; the parts of a top-level multipart are `1`, `2`, ...; the parts of a
  nested multipart `2` are `2.1`, `2.2`, ..., and the nested multipart itself is then `2.0`. An
  attached message (`message/rfc822`) is one part: its own parts are not numbered.
- A part is a multipart when its Content-Type has a `boundary` parameter. A part without a
  Content-Type has no type, no disposition, no file name and no Content-ID.
- Text: in a `multipart/alternative` message, the first `text/plain` part that is not an
  attachment (breadth first); otherwise every such part (depth first) joined by `\\n--\\n`. HTML:
  the first `text/html` part that is not an attachment (depth first). No text but HTML: the text
  is the HTML as text (`html2text.py`).
- Attachments: parts with `Content-Disposition: attachment` or of type `application/octet-stream`;
  inline: parts with `Content-Disposition: inline`; other parts: those with neither a disposition
  nor a text or multipart type (images in `multipart/related`). Mailpit lists inline and other
  parts together as `Inline`, and of all three only the parts with a file name or a Content-ID.
- Contents are transfer-decoded; `text/*` contents are converted to UTF-8 from their declared
  charset (`us-ascii`, enmime's default for a message without a Content-Type, is read as
  windows-1252, as enmime maps it). A text part without a charset is kept as it is (enmime would
  guess one; Mailpit turns it off only where a charset is declared).

Broken structure is read as enmime reads it, leniently: a multipart that is never closed ends at
the end of its parent, a preamble and an epilogue are skipped. Everything is bounded by
`PartLimits`: past a bound, the rest of the message is not read (`Reading.truncated` says so).
"""

from __future__ import annotations

import binascii
import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from mxrelay.mime.fields import Fields, read_fields
from mxrelay.mime.html2text import html_to_text
from mxrelay.mime.mediatype import parse_media_type
from mxrelay.mime.parse import delimiter_lines, line_end_at
from mxrelay.mime.text import base64_prefix, decode_text, decode_words, text_codec

ENMIME_ALIASES = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso646-us": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
}
"""Charset names enmime reads as another charset than Python's codec of that name would."""


@dataclass(frozen=True, slots=True)
class PartLimits:
    """How much of a message is read: parts, nesting of multiparts, decoded bytes in all."""

    max_parts: int = 2_000
    max_depth: int = 40
    max_decoded: int = 128 * 1024 * 1024


DEFAULT_PART_LIMITS = PartLimits()


@dataclass(slots=True)
class Part:
    part_id: str
    fields: Fields
    content_type: str = ""
    disposition: str = ""
    filename: str = ""
    content_id: str = ""
    charset: str = ""
    boundary: str = ""
    content: bytes = b""
    children: list[Part] = field(default_factory=list)

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    def depth_first(self) -> Iterator[Part]:
        stack = [self]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.children))

    def breadth_first(self) -> Iterator[Part]:
        queue = deque([self])
        while queue:
            part = queue.popleft()
            yield part
            queue.extend(part.children)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part as Mailpit's `Attachment` describes it."""

    part_id: str
    filename: str
    content_type: str
    content_id: str
    size: int
    md5: str
    sha1: str
    sha256: str

    @classmethod
    def of(cls, part: Part) -> Attachment:
        data = part.content
        return cls(
            part.part_id,
            part.filename or part.content_id,
            part.content_type,
            part.content_id,
            len(data),
            hashlib.md5(data, usedforsecurity=False).hexdigest(),
            hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            hashlib.sha256(data).hexdigest(),
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """What Mailpit shows of a message's body."""

    root: Part
    plain: str
    """The text parts' text (`text` is what Mailpit shows)."""
    html: str
    attachments: tuple[Part, ...]
    inline: tuple[Part, ...]
    """Inline parts, then the other parts: both only with a file name or a Content-ID."""
    truncated: bool = False

    @property
    def text(self) -> str:
        """Mailpit's `Text`: the text parts' text, else the HTML as text (converted on each
        access: only the message view and the text view ask)."""
        return self.plain or (html_to_text(self.html) if self.html else "")

    def part(self, part_id: str) -> Part | None:
        """An attachment or inline part by id, as Mailpit finds one (`GetAttachmentPart`)."""
        for candidate in (*self.inline, *self.attachments):
            if candidate.part_id == part_id:
                return candidate
        return None


class _Budget:
    def __init__(self, limits: PartLimits) -> None:
        self.limits = limits
        self.parts = 0
        self.decoded = 0
        self.exceeded = False

    def take_part(self, depth: int) -> bool:
        self.parts += 1
        if self.parts > self.limits.max_parts or depth > self.limits.max_depth:
            self.exceeded = True
        return not self.exceeded

    def take_bytes(self, size: int) -> int:
        """How many of `size` decoded bytes may still be kept."""
        allowed = max(0, min(size, self.limits.max_decoded - self.decoded))
        self.decoded += allowed
        if allowed < size:
            self.exceeded = True
        return allowed


def read_parts(data: bytes, limits: PartLimits = DEFAULT_PART_LIMITS) -> Reading:
    """The part tree and the bodies of a message; never raises."""
    budget = _Budget(limits)
    root = _part(data, 0, len(data), "0", 'text/plain; charset="us-ascii"', budget, 0)
    if root.boundary and root.is_multipart:
        return _multipart_reading(root, budget)
    if _binary_body(root):
        return Reading(
            root,
            "",
            "",
            (root,) if root.disposition != "inline" and _named(root) else (),
            (root,) if root.disposition == "inline" and _named(root) else (),
            budget.exceeded,
        )
    body = root.content.decode("utf-8", "replace")
    if root.content_type == "text/html":
        return Reading(root, "", body, (), (), budget.exceeded)
    return Reading(root, body, "", (), (), budget.exceeded)


def _multipart_reading(root: Part, budget: _Budget) -> Reading:
    def plain(part: Part) -> bool:
        return part.content_type == "text/plain" and part.disposition != "attachment"

    if root.content_type == "multipart/alternative":
        first = next(filter(plain, root.breadth_first()), None)
        text = _text(first) if first else ""
    else:
        text = "\n--\n".join(_text(part) for part in root.depth_first() if plain(part))
    html_part = next(
        (
            p
            for p in root.depth_first()
            if p.content_type == "text/html" and p.disposition != "attachment"
        ),
        None,
    )
    html = _text(html_part) if html_part else ""

    def select(test: Callable[[Part], bool]) -> tuple[Part, ...]:
        return tuple(p for p in root.breadth_first() if test(p) and _named(p))

    attachments = select(
        lambda p: p.disposition == "attachment" or p.content_type == "application/octet-stream"
    )
    inline = select(lambda p: p.disposition == "inline" and not p.is_multipart)
    other = select(
        lambda p: (
            not p.is_multipart
            and not p.disposition
            and p.content_type not in ("application/octet-stream", "text/plain", "text/html")
            and p is not root
        )
    )
    return Reading(root, text, html, attachments, inline + other, budget.exceeded)


def _named(part: Part) -> bool:
    return bool(part.filename or part.content_id)


def _text(part: Part) -> str:
    return part.content.decode("utf-8", "replace")


def _binary_body(root: Part) -> bool:
    """enmime's `detectBinaryBody`: is a single-part message an attachment rather than text?"""
    declared = root.fields.get("Content-Type")
    disposition = parse_media_type(root.fields.get("Content-Disposition"))[0]
    kind = parse_media_type(declared)[0] if declared else "text/plain"
    if kind in ("text/plain", "text/html"):
        return disposition == "attachment"
    return True


def _part(
    data: bytes, start: int, end: int, part_id: str, default: str, budget: _Budget, depth: int
) -> Part:
    fields = read_fields(data, start, end)
    part = Part(part_id, fields)
    declared = fields.get("Content-Type") or default
    if declared:
        part.content_type, params = parse_media_type(declared)
        disposition, disposition_params = parse_media_type(fields.get("Content-Disposition"))
        part.disposition = disposition
        part.filename = decode_words(disposition_params.get("filename", ""))
        for name in ("name", "file"):
            if not part.filename and params.get(name):
                part.filename = decode_words(params[name])
        part.charset = params.get("charset", "")
        part.boundary = params.get("boundary", "")
        part.content_id = _content_id(fields.get("Content-Id"))
    if part.boundary and (depth > 0 or part.is_multipart):
        _children(data, fields.body_start, end, part, budget, depth)
        if depth > 0:
            part.part_id += ".0"
    else:
        part.content = _decode(data[fields.body_start : end], part, budget)
    return part


def _children(data: bytes, start: int, end: int, parent: Part, budget: _Budget, depth: int) -> None:
    for index, (child_start, child_end) in enumerate(
        _spans(data, start, end, parent.boundary.encode("utf-8", "surrogateescape")), 1
    ):
        if not budget.take_part(depth + 1):
            return
        child_id = str(index) if depth == 0 else f"{parent.part_id}.{index}"
        parent.children.append(_part(data, child_start, child_end, child_id, "", budget, depth + 1))


def _spans(data: bytes, start: int, end: int, boundary: bytes) -> Iterator[tuple[int, int]]:
    """The (start, end) of each part between the delimiter lines of `boundary` (`parse.py`): the
    line end before a delimiter belongs to it; a part that is never closed ends at `end`."""
    delimiters, close = delimiter_lines(data, boundary, start, end)
    if not delimiters:
        return
    stops = [d.start for d in delimiters[1:]]
    stops.append(close.start if close is not None else end)
    for opened, stop in zip(delimiters, stops, strict=True):
        if close is None and stop == end:
            yield opened.end, end
        else:
            yield opened.end, max(opened.end, stop - line_end_at(data, stop))


def _content_id(value: str) -> str:
    """enmime's `FromIDHeader`: angle brackets off, then URL query unescaped (kept as written
    when that fails)."""
    if not value:
        return ""
    text = value.lstrip("<").rstrip(">")
    if "%" not in text and "+" not in text:
        return text
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        return text


def _decode(body: bytes, part: Part, budget: _Budget) -> bytes:
    encoding = part.fields.get("Content-Transfer-Encoding").lower()
    if encoding == "base64":
        raw = decode_base64(body)
    elif encoding == "quoted-printable":
        raw = binascii.a2b_qp(body)
    else:
        raw = body
    known = encoding in ("", "7bit", "8bit", "binary", "base64", "quoted-printable")
    if known and part.content_type.startswith("text/") and part.charset:
        raw = _to_utf8(raw, part.charset)
    return raw[: budget.take_bytes(len(raw))]


DECODE_WINDOW = 1 << 20
"""Base64 is decoded in windows of about this many bytes (see `decode_base64`)."""


def decode_base64(body: bytes) -> bytes:
    """A base64 body, decoded in C (line ends and other characters outside the alphabet are
    skipped) a window of whole lines at a time, so that a thread decoding a large attachment
    hands the GIL over between windows. Windows stay exact while each holds whole groups of four
    (76-character lines do); otherwise the whole body is decoded at once, and a partial last group
    leniently (`text.base64_prefix`)."""
    out: list[bytes] = []
    start = 0
    try:
        while start < len(body):
            stop = body.find(b"\n", start + DECODE_WINDOW)
            stop = len(body) if stop == -1 else stop + 1
            out.append(binascii.a2b_base64(body[start:stop]))
            start = stop
        return b"".join(out)
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        return base64_prefix(body)


def _to_utf8(raw: bytes, charset: str) -> bytes:
    name = charset.strip().strip('"').lower()
    codec = ENMIME_ALIASES.get(name) or text_codec(name)
    if codec in ("utf-8", "utf_8"):
        return raw
    return decode_text(raw, codec).encode("utf-8")
