"""A byte-exact MIME scanner: where every header field, part and boundary sits in the original bytes.

Python's `email` package re-folds and re-encodes when it serializes a message, so the transforms in
this package never serialize through it. Instead this module walks the raw bytes once and records
spans (start and end offsets) for the header fields, the header/body separator, each multipart
delimiter line and each part; the transforms splice new bytes into those spans and leave every
other byte where it was. The stdlib is still used where it is good at something: parsing the
*values* of Content-Type and Content-Disposition (parameters, RFC 2231 continuations and charsets,
RFC 2047 encoded words), on a copy.

Both CRLF and bare-LF line ends are understood (messages from files or the API may use LF); a
part's own line-end style is reported so that inserted lines can match it.

A structure that cannot be located exactly (a multipart without a boundary parameter, a boundary
that never appears, a multipart that is not closed, nesting, part, header or field counts beyond
`MimeLimits`) raises `MimeStructureError`; callers pass such a message through unchanged and say
why. Every loop here is bounded by those limits, and nothing recurses deeper than `max_depth`.
"""

from __future__ import annotations

import email.errors
import email.message
import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from mxrelay.mime.text import decode_words, text_codec

_LF = 0x0A
_CR = 0x0D
_WSP = (0x20, 0x09)


class MimeStructureError(ValueError):
    """The message's MIME structure cannot be located exactly; `str()` says what is wrong."""


HEADER_LIMIT = 256 * 1024
"""Bytes of one header block that are read. Exchange Online refuses a message whose header is
larger than 256 KB, and no mail software writes one that large; beyond it a header block is
opaque: `scan_headers` says it is incomplete, `parse_message` calls the structure broken."""

PARAMETER_FIELD_LIMIT = 8 * 1024
"""Characters of a Content-Type or Content-Disposition value whose parameters are parsed."""

PARAMETER_LIMIT = 64
"""Parameters (`;`) of one such field that are parsed: the stdlib's parameter splitter
(`email.message._parseparam`) rescans the value for quotes at every `;`, quadratic in their
number. Beyond either bound only the type before the first `;` is read: no boundary (so a
multipart is broken MIME), no file name."""


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """Bounds on the work one message may cause.

    `max_depth` counts nested multiparts (and descended message/rfc822 parts); Postfix's
    `mime_nesting_limit` defaults to 100, but real mail rarely goes past 5, and a smaller bound keeps
    the recursion shallow. `max_parts` bounds the number of entities scanned in one message,
    `max_header_bytes` the size of each entity's header block and `max_fields` the header fields of
    all entities together (each is an object in memory).
    """

    max_depth: int = 40
    max_parts: int = 10_000
    max_header_bytes: int = HEADER_LIMIT
    max_fields: int = 100_000


DEFAULT_LIMITS = MimeLimits()


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field, continuation lines and line end included: `data[start:end]`."""

    name: str
    start: int
    end: int
    colon: int
    """Offset of the colon; the raw value is `data[colon + 1:end]`. -1 when the line has none."""

    @property
    def key(self) -> str:
        return self.name.strip().lower()


@dataclass(frozen=True, slots=True)
class Delimiter:
    """A boundary delimiter line: `data[start:end]`, its line end included."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Entity:
    """A message or body part, located in the original bytes.

    `data[start:end]` is the whole entity; the header fields come first, then (from `headers_end`)
    the empty line that separates them from the body at `body_start` (equal to `headers_end` when
    the entity has no separator line). For a multipart, `delimiters[i]` opens `children[i]` and
    `close` is the close delimiter.
    """

    start: int
    end: int
    headers_end: int
    body_start: int
    fields: tuple[HeaderField, ...]
    newline: bytes
    content_type: str
    disposition: str | None
    filenames: tuple[str, ...]
    """Content-Disposition `filename` and Content-Type `name`, decoded, in that order."""
    method: str | None
    boundary: bytes | None = None
    children: tuple[Entity, ...] = ()
    delimiters: tuple[Delimiter, ...] = ()
    close: Delimiter | None = None
    embedded: Entity | None = None
    """The parsed message of a message/rfc822 part, when the caller asked to look inside."""

    @property
    def filename(self) -> str | None:
        return self.filenames[0] if self.filenames else None

    @property
    def is_multipart(self) -> bool:
        return self.boundary is not None

    def fields_named(self, *keys: str) -> tuple[HeaderField, ...]:
        return tuple(f for f in self.fields if f.key in keys)


def parse_message(
    data: bytes,
    *,
    limits: MimeLimits = DEFAULT_LIMITS,
    descend_messages: bool = False,
) -> Entity:
    """Locate the whole MIME tree of `data`. Raises `MimeStructureError` on broken structure."""
    scanner = _Scanner(data, limits, descend_messages)
    return scanner.entity(0, len(data), depth=0, default_type="text/plain")


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """The top-level header fields of a message, without looking at its body.

    `complete` is False when the header block is larger than `HEADER_LIMIT`: `fields` then lists
    only the fields within the limit, and `headers_end` is where reading stopped.
    """

    fields: tuple[HeaderField, ...]
    headers_end: int
    body_start: int
    newline: bytes
    complete: bool = True


def scan_headers(data: bytes, limit: int = HEADER_LIMIT) -> HeaderBlock:
    """Locate the message's own header fields (never raises; works on any bytes)."""
    scanner = _Scanner(data, DEFAULT_LIMITS, descend_messages=False)
    end = min(len(data), limit)
    fields, headers_end, body_start = scanner.header_block(0, end)
    complete = headers_end < end or end == len(data)
    if not complete and fields and data[fields[-1].end - 1 : fields[-1].end] != b"\n":
        fields = fields[:-1]  # the last field runs past the limit: not read at all
        headers_end = body_start = fields[-1].end if fields else 0
    return HeaderBlock(
        fields, headers_end, body_start, scanner.newline_of(0, len(data)), complete=complete
    )


_FIELD_END = re.compile(rb"\n(?![ \t])")
_BLANK_LINE = re.compile(rb"\n\r?\n")


def header_region(data: bytes, limit: int = HEADER_LIMIT) -> tuple[int, bool]:
    """(end, complete): where the top-level header fields end (the blank line, or the end of the
    data), looked for within `limit` bytes; `complete` is False when they go on past it."""
    if data.startswith((b"\n", b"\r\n")):
        return 0, True
    found = _BLANK_LINE.search(data, 0, limit + 2)
    if found is not None:
        return found.start() + 1, True
    return min(len(data), limit), len(data) <= limit


class FieldFinder:
    """The raw values of a few named header fields, found by one regular expression in C.

    For callers that need some fields of any message cheaply (summaries, the sender check at the
    end of DATA): no object is made for the other fields, however many there are.
    """

    def __init__(self, names: Iterable[str]) -> None:
        alternatives = b"|".join(re.escape(name.encode("ascii")) for name in names)
        self._pattern = re.compile(
            rb"^(" + alternatives + rb")[ \t]*:", re.IGNORECASE | re.MULTILINE
        )

    def values(self, data: bytes, end: int, per_name: int = 1) -> dict[str, list[bytes]]:
        """Up to `per_name` raw values (folded, line end excluded) of each name, in order, in
        `data[:end]`; names are lower-case."""
        found: dict[str, list[bytes]] = {}
        for match in self._pattern.finditer(data, 0, end):
            values = found.setdefault(match.group(1).decode("ascii").lower(), [])
            if len(values) >= per_name:
                continue
            value_end = data.find(b"\n", match.end(), end)
            if value_end != -1 and data[value_end + 1 : value_end + 2] in (b" ", b"\t"):
                stop = _FIELD_END.search(data, value_end + 1, end)  # folded: find its end
                value_end = stop.start() if stop is not None else -1
            value_end = end if value_end == -1 else value_end
            values.append(data[match.end() : value_end].rstrip(b"\r\n"))
        return found


FIND_WINDOW = 1 << 20
"""Searches through large bodies go in windows of this size (see `find`)."""


def find(
    data: bytes, needle: bytes, start: int = 0, end: int | None = None, window: int = FIND_WINDOW
) -> int:
    """`data.find(needle, start, end)` in windows of FIND_WINDOW bytes.

    One `bytes.find` over a 20 MB body holds the GIL for tens of milliseconds, which would stall
    the event loop even while the transform runs in a worker thread; between windows the
    interpreter can hand the GIL over.
    """
    stop = len(data) if end is None else min(end, len(data))
    overlap = len(needle) - 1
    pos = start
    while pos < stop:
        window_end = min(stop, pos + window + overlap)
        at = data.find(needle, pos, window_end)
        if at != -1:
            return at
        if window_end == stop:
            break
        pos += window
    return -1


def line_end_at(data: bytes, end: int) -> int:
    """How many bytes of line end (2 for CRLF, 1 for LF, 0 for none) stand just before `end`."""
    if end >= 1 and data[end - 1] == _LF:
        return 2 if end >= 2 and data[end - 2] == _CR else 1
    return 0


def unfold(raw: bytes) -> str:
    """A header value as text: folding removed, 8-bit bytes kept as surrogate escapes."""
    text = raw.decode("ascii", "surrogateescape")
    return "".join(text.replace("\r\n", "\n").split("\n")).strip()


def field_value(data: bytes, field: HeaderField) -> str:
    """A field's value, unfolded (empty when the line has no colon)."""
    return unfold(data[field.colon + 1 : field.end]) if field.colon != -1 else ""


class _Scanner:
    def __init__(self, data: bytes, limits: MimeLimits, descend_messages: bool) -> None:
        self.data = data
        self.limits = limits
        self.descend_messages = descend_messages
        self.count = 0
        self.fields = 0

    def entity(self, start: int, end: int, depth: int, default_type: str) -> Entity:
        self.count += 1
        if self.count > self.limits.max_parts:
            raise MimeStructureError(f"more than {self.limits.max_parts} parts")
        if depth > self.limits.max_depth:
            raise MimeStructureError(f"nesting deeper than {self.limits.max_depth} levels")
        fields, headers_end, body_start = self.header_block(
            start, min(end, start + self.limits.max_header_bytes)
        )
        if headers_end - start >= self.limits.max_header_bytes:
            raise MimeStructureError(f"a header block over {self.limits.max_header_bytes} bytes")
        self.fields += len(fields)
        if self.fields > self.limits.max_fields:
            raise MimeStructureError(f"more than {self.limits.max_fields} header fields")
        newline = self.newline_of(start, end)
        info = _describe(self.data, fields, default_type)
        base = Entity(
            start=start,
            end=end,
            headers_end=headers_end,
            body_start=body_start,
            fields=fields,
            newline=newline,
            content_type=info.content_type,
            disposition=info.disposition,
            filenames=info.filenames,
            method=info.method,
        )
        if info.content_type.startswith("multipart/"):
            return self.multipart(base, info.boundary, depth)
        if info.content_type == "message/rfc822" and self.descend_messages:
            inner = self.entity(body_start, end, depth + 1, "text/plain")
            return replace(base, embedded=inner)
        return base

    def header_block(self, start: int, end: int) -> tuple[tuple[HeaderField, ...], int, int]:
        data = self.data
        fields: list[HeaderField] = []
        pos = start
        while pos < end:
            if data[pos] == _LF:
                return tuple(fields), pos, pos + 1
            if data[pos] == _CR and (pos + 1 == end or data[pos + 1] == _LF):
                # CRLF, or a CR cut off at the very end: the empty line that ends the fields.
                return tuple(fields), pos, min(pos + 2, end)
            line_end = self.next_line(pos, end)
            field_end = line_end
            while field_end < end and data[field_end] in _WSP:
                field_end = self.next_line(field_end, end)
            colon = data.find(b":", pos, field_end)
            name = data[pos:colon] if colon != -1 else b""
            fields.append(
                HeaderField(name.decode("ascii", "surrogateescape"), pos, field_end, colon)
            )
            pos = field_end
        return tuple(fields), end, end

    def next_line(self, pos: int, end: int) -> int:
        found = self.data.find(b"\n", pos, end)
        return end if found == -1 else found + 1

    def newline_of(self, start: int, end: int) -> bytes:
        found = self.data.find(b"\n", start, end)
        if found > start and self.data[found - 1] == _CR:
            return b"\r\n"
        if found == -1:
            # One line without an end (or an empty part): what the message as a whole uses, and
            # CRLF (the canonical form) when it has no line end at all.
            first = self.data.find(b"\n")
            return b"\n" if first != -1 and (first == 0 or self.data[first - 1] != _CR) else b"\r\n"
        return b"\n"

    def multipart(self, base: Entity, boundary: bytes | None, depth: int) -> Entity:
        if not boundary:
            raise MimeStructureError(f"{base.content_type} without a boundary parameter")
        delimiters, close = delimiter_lines(self.data, boundary, base.body_start, base.end)
        if not delimiters:
            raise MimeStructureError(f"{base.content_type} boundary not found")
        if close is None:
            raise MimeStructureError(f"{base.content_type} not closed (truncated?)")
        child_type = "message/rfc822" if base.content_type == "multipart/digest" else "text/plain"
        children: list[Entity] = []
        stops = [*delimiters[1:], close]
        for opened, following in zip(delimiters, stops, strict=True):
            part_end = max(opened.end, following.start - line_end_at(self.data, following.start))
            children.append(self.entity(opened.end, part_end, depth + 1, child_type))
        return replace(
            base,
            boundary=boundary,
            children=tuple(children),
            delimiters=tuple(delimiters),
            close=close,
        )


def delimiter_lines(
    data: bytes, boundary: bytes, start: int, end: int
) -> tuple[list[Delimiter], Delimiter | None]:
    """The delimiter lines of `boundary` in `data[start:end]` (`--boundary` at the start of a line,
    then blanks and a line end), up to the close delimiter (`--boundary--`), which is None when
    the multipart is never closed."""
    dash = b"--" + boundary
    found: list[Delimiter] = []
    pos = start
    while pos < end:
        at = find(data, dash, pos, end)
        if at == -1:
            break
        after = at + len(dash)
        if at != start and data[at - 1] != _LF:
            pos = after
            continue
        closing = data.startswith(b"--", after, end)
        cursor = after + 2 if closing else after
        while cursor < end and data[cursor] in _WSP:
            cursor += 1
        if cursor == end:
            line_end = end
        elif data[cursor] == _LF:
            line_end = cursor + 1
        elif data[cursor] == _CR and cursor + 1 < end and data[cursor + 1] == _LF:
            line_end = cursor + 2
        else:
            pos = after
            continue
        if closing:
            return found, Delimiter(at, line_end)
        found.append(Delimiter(at, line_end))
        pos = line_end
    return found, None


@dataclass(frozen=True, slots=True)
class _Info:
    content_type: str
    disposition: str | None
    filenames: tuple[str, ...]
    method: str | None
    boundary: bytes | None


def _describe(data: bytes, fields: tuple[HeaderField, ...], default_type: str) -> _Info:
    """Content type, disposition, file name, calendar method and boundary of one entity.

    The type and the disposition are read here (`declared_type`: RFC 2045 allows comments and
    blanks around their tokens, which compat32 keeps). The stdlib's compat32 `Message` parses the
    parameter syntax (quoting, RFC 2231); only the two relevant fields are copied into it,
    unfolded and within the parameter bounds, and each is parsed once. Parameters it cannot read
    (it raises on some malformed RFC 2231 sections) are left out, as past the bounds: the type is
    still the declared one.
    """
    values: dict[str, str] = {}
    for key in ("content-type", "content-disposition"):
        for field in fields:
            if field.key == key and field.colon != -1:
                values[key] = _bounded_parameters(unfold(data[field.colon + 1 : field.end]))
                break
    if not values:
        return _Info(default_type, None, (), None, None)
    content_type = default_type
    if "content-type" in values:
        content_type = declared_type(values["content-type"])
        if content_type.count("/") != 1:
            content_type = "text/plain"  # RFC 2045 5.2, as compat32's get_content_type
    disposition = declared_type(values.get("content-disposition", "")) or None
    probe = email.message.Message()
    for key, value in values.items():
        probe[key] = value
    type_params = _params(probe, "content-type")
    disposition_params = _params(probe, "content-disposition")
    names: list[str] = []
    for name in (disposition_params.get("filename"), type_params.get("name")):
        text = decode_words(name).strip() if name else ""
        if text and text not in names:
            names.append(text)
    method = type_params.get("method", "").strip().upper()
    return _Info(
        content_type=content_type,
        disposition=disposition,
        filenames=tuple(names),
        method=method or None,
        boundary=_boundary_bytes(type_params.get("boundary", "").rstrip()),
    )


_TYPE_SPECIALS = re.compile(r"[()\\;]")


def declared_type(value: str) -> str:
    """The token before the parameters of a Content-Type or Content-Disposition value, lower
    case, without the comments and blanks RFC 2045 5.1 allows around it (`text / calendar
    (invitation); method=REQUEST` is `text/calendar`); empty when there is none. Linear: one
    regular-expression search per special character."""
    head = value.partition(";")[0]
    if "(" in head:
        head = _outside_comments(value)
    return " ".join(head.split()).replace(" /", "/").replace("/ ", "/").lower()


def _outside_comments(value: str) -> str:
    """`value` up to its first `;` outside comments, each comment (nested, with quoted pairs)
    replaced by a blank; an unclosed comment runs to the end."""
    pieces: list[str] = []
    depth = pos = 0
    while (match := _TYPE_SPECIALS.search(value, pos)) is not None:
        at = match.start()
        char = value[at]
        if not depth:
            pieces.append(value[pos:at])
        pos = at + 1
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            pieces.append("" if depth else " ")
        elif char == "\\":
            if depth:
                pos = at + 2  # a quoted pair: the next character is not special
            else:
                pieces.append(char)
        elif char == ";" and not depth:
            return "".join(pieces)
        elif not depth:
            pieces.append(char)
    if not depth:
        pieces.append(value[pos:])
    return "".join(pieces)


def _bounded_parameters(value: str) -> str:
    """The value as parsed: whole within the parameter bounds, else only what precedes the
    first `;` (see PARAMETER_FIELD_LIMIT and PARAMETER_LIMIT)."""
    if len(value) <= PARAMETER_FIELD_LIMIT and value.count(";") <= PARAMETER_LIMIT:
        return value
    return value.partition(";")[0][:PARAMETER_FIELD_LIMIT]


def _params(probe: email.message.Message, header: str) -> dict[str, str]:
    """A field's parameters by lower-case name, RFC 2231 joined and decoded. The first
    occurrence of a name wins, as in the stdlib. An RFC 2231 charset that is not a text charset
    (`mime.text`) is read as UTF-8. None at all when the stdlib cannot read them: it raises
    TypeError for `x*=a; x*0=b` (sorting None with int) and ValueError for a section number past
    Python's 4300-digit int limit, among others."""
    found: dict[str, str] = {}
    try:
        params = probe.get_params([], header=header)[1:]
        for name, text in params:
            value: str | tuple[str | None, str | None, str] = text  # a tuple: RFC 2231 encoded
            if isinstance(value, tuple) and value[0]:
                value = (text_codec(value[0]), value[1], value[2])
            found.setdefault(name.strip().lower(), email.utils.collapse_rfc2231_value(value))
    except (TypeError, ValueError, LookupError, UnicodeError, email.errors.MessageError):
        return {}
    return found


def _boundary_bytes(boundary: str | None) -> bytes | None:
    """The boundary as it appears in the body; None (so: broken) if it cannot be written."""
    if not boundary:
        return None
    try:
        return boundary.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return None
