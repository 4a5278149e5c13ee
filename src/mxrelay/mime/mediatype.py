"""Content-Type and Content-Disposition values: the type and its parameters, leniently and bounded.

What Go's `mime.ParseMediaType` returns for well-formed values (the type lower case; parameter
names lower case; quoted strings unquoted; RFC 2231 continuations joined and percent-decoded in
their charset), and a best reading of malformed ones instead of an error: a duplicate parameter
keeps its first value, a parameter without `=` is left out. Only `PARAMETER_FIELD_LIMIT`
characters and `PARAMETER_LIMIT` parameters of a value are read (`parse.py` says why).
"""

from __future__ import annotations

import re

from mxrelay.mime.parse import PARAMETER_FIELD_LIMIT, PARAMETER_LIMIT
from mxrelay.mime.text import decode_text

_PARAMETER = re.compile(r';\s*([^\s=;"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^;]*))?', re.DOTALL)
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$|^(.*?)(\*)$")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
SECTION_DIGITS = 4
"""Digits of an RFC 2231 section number that are read: sections count from 0 without a gap, and
only `PARAMETER_LIMIT` parameters are read, so a longer number is never part of a value."""


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """(type lower case, parameters by lower-case name); never raises."""
    value = value[:PARAMETER_FIELD_LIMIT]
    kind, _, rest = value.partition(";")
    media = kind.strip().lower()
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for count, match in enumerate(_PARAMETER.finditer(";" + rest if rest else "")):
        if count >= PARAMETER_LIMIT:
            break
        name, raw = match.group(1).lower(), match.group(2)
        if raw is None:
            continue
        text = _unquote(raw.strip())
        section = _SECTION.match(name)
        if section is None:
            plain.setdefault(name, text)
        elif section.group(1) is not None:
            if len(section.group(2)) > SECTION_DIGITS:
                continue  # no section of a joined value: `int()` refuses past 4300 digits
            parts = sections.setdefault(section.group(1), {})
            parts.setdefault(int(section.group(2)), (text, bool(section.group(3))))
        else:
            sections.setdefault(section.group(4), {}).setdefault(0, (text, True))
    for name, parts in sections.items():
        plain.setdefault(name, _joined(parts))
    return media, plain


def _unquote(text: str) -> str:
    if len(text) >= 1 and text[0] == '"':
        inner = text[1:-1] if len(text) >= 2 and text.endswith('"') else text[1:]
        return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)
    return text


def _joined(parts: dict[int, tuple[str, bool]]) -> str:
    """RFC 2231: sections 0, 1, ... in order (a gap ends them); encoded sections percent-decoded
    in the charset named by the first one (`charset'language'value`)."""
    charset: str | None = None
    data = bytearray()
    index = 0
    while index in parts:
        text, encoded = parts[index]
        if encoded:
            if index == 0 and text.count("'") >= 2:
                charset, _, text = text.split("'", 2)
            raw = text.encode("utf-8", "surrogateescape")
            data += _PERCENT.sub(lambda m: bytes((int(m.group(1), 16),)), raw)
        else:
            data += text.encode("utf-8", "surrogateescape")
        index += 1
    return decode_text(bytes(data), charset or "utf-8")
