"""Header fields as Go's `net/textproto` reads them: canonical names, unfolded values.

Mailpit's clients see header names the way Go writes them (`Message-Id`, `Mime-Version`,
`Dkim-Signature`) and values unfolded the way `textproto.Reader` unfolds them (each line trimmed,
continuation lines joined with one space). This module reads a header block that way, with bounds:
at most `HEADER_LIMIT` bytes and `FIELD_LIMIT` fields are read.

Go refuses a header block with a malformed line (no colon, or a name with a byte that is not a
token character); Mailpit never stores such a message, since its SMTP server parses every message
with Go before storing it. The relay stores every message it accepts, so here a malformed line is
read as leniently as it can be: a line without a colon is skipped, and a name that is not a token
is kept as written, as Go keeps a name with a space before its colon.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mxrelay.mime.parse import HEADER_LIMIT

FIELD_LIMIT = 10_000
"""Header fields read from one header block (more are left out)."""

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TRIM = " \t\r\n"


def canonical_key(name: str) -> str:
    """`name` as Go's `textproto.CanonicalMIMEHeaderKey` writes it: the first letter and every
    letter after a hyphen upper case, the rest lower case; a name with a space or another byte
    that is not a token character is returned unchanged."""
    if not name or any(ord(char) > 0x7F or ord(char) not in _TOKEN for char in name):
        return name
    out: list[str] = []
    upper = True
    for char in name:
        out.append(char.upper() if upper else char.lower())
        upper = char == "-"
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Fields:
    """The header fields of one entity, in order, and where its body starts."""

    items: tuple[tuple[str, str], ...]
    """(canonical name, unfolded value) per field."""
    body_start: int

    def get(self, name: str) -> str:
        """The first value of `name` (any case), empty when absent, as Go's `Header.Get`."""
        key = canonical_key(name)
        for field, value in self.items:
            if field == key:
                return value
        return ""

    def values(self, name: str) -> list[str]:
        key = canonical_key(name)
        return [value for field, value in self.items if field == key]

    def as_map(self) -> dict[str, list[str]]:
        """Name → values, names in Go's (byte-wise) order, as Go encodes a `mail.Header`."""
        found: dict[str, list[str]] = {}
        for name, value in self.items:
            found.setdefault(name, []).append(value)
        return {name: found[name] for name in sorted(found)}


def read_fields(data: bytes, start: int = 0, end: int | None = None) -> Fields:
    """The header block of the entity at `data[start:end]`; never raises.

    The block ends at the first empty line (the body starts after it), at `HEADER_LIMIT` bytes
    past `start`, or at `end`. A part whose first line is neither a field nor a continuation has
    no header block: its body starts at `start`.
    """
    stop = len(data) if end is None else min(end, len(data))
    limit = min(stop, start + HEADER_LIMIT)
    lines: list[bytes] = []
    pos = start
    body_start = stop
    while pos < limit:
        newline = data.find(b"\n", pos, stop)
        line_end = stop if newline == -1 else newline + 1
        line = data[pos:line_end]
        if line in (b"\n", b"\r\n", b"\r"):
            body_start = line_end
            break
        if not lines and line[:1] not in (b" ", b"\t") and b":" not in line:
            body_start = start  # not a header block at all
            break
        lines.append(line)
        pos = line_end
    else:
        body_start = pos if pos < stop else stop
    return Fields(tuple(_fields(lines)), body_start)


def _fields(lines: Iterable[bytes]) -> Iterable[tuple[str, str]]:
    current: list[str] | None = None
    count = 0
    for raw in lines:
        text = raw.decode("utf-8", "replace")
        if text[:1] in (" ", "\t"):
            if current is not None:
                current.append(text.strip(_TRIM))
            continue
        if current is not None and current[0].partition(":")[0]:
            yield _field(current)
            count += 1
            if count >= FIELD_LIMIT:
                return
        current = [text.strip(_TRIM)] if ":" in text else None
    if current is not None and current[0].partition(":")[0]:
        yield _field(current)


def _field(parts: Sequence[str]) -> tuple[str, str]:
    name, _, value = " ".join(parts).partition(":")
    return canonical_key(name), value.lstrip(" \t")
