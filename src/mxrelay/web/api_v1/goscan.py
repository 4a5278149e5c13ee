"""Go's JSON scanner, as Mailpit's request bodies meet it: `parse` reads a body's first JSON value
(what follows it is not looked at) and refuses what Go's scanner refuses, in Go's words: `EOF` for
an empty body, `unexpected EOF`, `invalid character 'x' looking for beginning of value` and the
scanner's other contexts, NaN and Infinity, nesting past `MAX_DEPTH`.

Python's decoder does the parsing (the grammar is JSON's either way) and its error is translated
into the one Go's scanner stops at. The body has been bounded before it gets here (`body.py`);
`gojson.py` fills Mailpit's structs from what this reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate, takewhile
from typing import Any, cast

MAX_DEPTH = 512
"""Nesting levels read (Go's scanner allows 10,000; Python's decoder recurses per level, and no
request body nests past three)."""


class GoJsonError(ValueError):
    """The body is not the JSON the struct takes; `str()` is Go's `err.Error()`, a syntax or a
    type error alike (Mailpit answers both with the text, and so does every route here)."""


class JsonObject:
    """A parsed JSON object: its members in the order written, repeated keys kept."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.pairs)


def _refuse_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity: Python's decoder takes them, Go's scanner stops at them."""
    context = "in numeric literal" if name.startswith("-") else "looking for beginning of value"
    raise GoJsonError(f"invalid character '{name.lstrip('-')[0]}' {context}")


_DECODER = json.JSONDecoder(
    object_pairs_hook=JsonObject, parse_constant=_refuse_constant, parse_int=float
)
"""Numbers are floats: Go has no integer field here, and Python refuses an int of over 4,300
digits where Go reads any."""
_SPACE = re.compile(r"[ \t\r\n]*")
_INVALID_BYTE = re.compile("[\udc80-\udcff]")


def parse(body: bytes) -> Any:
    """The body's first JSON value (objects as `JsonObject`, arrays as lists, numbers as floats);
    GoJsonError with Go's words where Go's scanner stops."""
    try:
        raw = text = body.decode("utf-8")
    except UnicodeDecodeError:
        raw = body.decode("utf-8", "surrogateescape")  # each such byte, as Go quotes it
        text = _INVALID_BYTE.sub("\ufffd", raw)  # and as Go reads it in a string: U+FFFD
    start = _end(_SPACE, text, 0)
    if start == len(text):
        raise GoJsonError("EOF")
    deep = _too_deep(body, text, start)
    try:
        value, end = _DECODER.raw_decode(text if deep is None else text[:deep], start)
    except json.JSONDecodeError as exc:
        raise GoJsonError(_syntax_error(raw, exc, deep)) from None
    number = _number_error(raw, start) if isinstance(value, float) and end < len(raw) else None
    if number is not None:  # `1.` or `1e`: Python reads `1` and stops, Go reads on
        raise GoJsonError(number)
    return value


def _end(pattern: re.Pattern[str], text: str, position: int) -> int:
    """Where a run of `pattern` (which matches the empty string too) from `position` ends."""
    return cast(re.Match[str], pattern.match(text, position)).end()


_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


def _brackets(text: str, start: int) -> Iterator[tuple[int, str]]:
    """The brackets outside strings from `start` on, with their positions."""
    for match in _TOKENS.finditer(text, start):
        if len(token := match.group()) == 1:
            yield match.start(), token


_BYTE_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEPS = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _too_deep(body: bytes, text: str, start: int) -> int | None:
    """Where the first value nests past MAX_DEPTH (the bracket Go's scanner stops at), if it
    does. How deep it goes is counted in C over the body's brackets outside strings, and only
    in a body with that many brackets at all; where, only when it is too deep."""
    if text[start] not in "[{" or body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return None
    brackets = _BYTE_STRINGS.sub(b"", body[start:]).translate(None, _NOT_BRACKETS)
    depths = takewhile(bool, accumulate(map(_STEPS.__getitem__, brackets)))  # the first value
    if max(depths, default=0) <= MAX_DEPTH:
        return None
    depth = 0
    for position, bracket in _brackets(text, start):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return position
        if depth <= 0:
            return None
    return None


def _syntax_error(text: str, exc: json.JSONDecodeError, deep: int | None) -> str:
    """Go's words for where Python's decoder stopped (`text` up to there is valid JSON)."""
    position, message = exc.pos, exc.msg
    if message.startswith("Unterminated string"):
        return _string_error(text, position + 1) or "unexpected EOF"
    if message.startswith("Invalid \\uXXXX"):
        position = text.rfind("\\", 0, position)
    if message.startswith(("Invalid control", "Invalid \\")):
        return _string_error(text, position) or _at(text, position, "in string literal")
    if deep is not None and position >= deep and message == "Expecting value":
        return _at(text, deep, "exceeded max depth")
    if message.startswith("Illegal trailing comma"):  # Python 3.13: at the comma, Go after it
        position = _end(_SPACE, text, position + 1)
        message = "Expecting property name" if "object" in message else "Expecting value"
    if position >= len(text):
        return "unexpected EOF"
    if message == "Expecting value":
        if text[position] == "-":
            return _number_error(text, position) or _at(text, position, "in numeric literal")
        return _literal_error(text, position) or _at(
            text, position, "looking for beginning of value"
        )
    if message == "Expecting ',' delimiter":
        number = _number_before(text, position)
        if number is not None:
            return number
        inside = "after object key:value pair" if _innermost(text, position) == "{" else None
        return _at(text, position, inside or "after array element")
    if message == "Expecting ':' delimiter":
        return _at(text, position, "after object key")
    return _at(text, position, "looking for beginning of object key string")


_PLAIN = re.compile(r'[^"\\\x00-\x1f]*+')
_HEX = frozenset("0123456789abcdefABCDEF")


def _string_error(text: str, position: int) -> str | None:
    """Go's error in the string being read at `position`, or None if Go finds it whole."""
    while True:
        position = _end(_PLAIN, text, position)
        if position >= len(text):
            return "unexpected EOF"
        if text[position] == '"':
            return None
        if text[position] != "\\":
            return _at(text, position, "in string literal")
        escape = text[position + 1 : position + 2]
        if escape == "u":
            digits = text[position + 2 : position + 6]
            bad = next((n for n, digit in enumerate(digits) if digit not in _HEX), None)
            if bad is not None:
                return _at(text, position + 2 + bad, "in \\u hexadecimal character escape")
            if len(digits) < 4:
                return "unexpected EOF"
            position += 6
        elif escape and escape in 'bfnrt\\/"':
            position += 2
        else:
            return _at(text, position + 1, "in string escape code") if escape else "unexpected EOF"


_LITERALS = {"n": "null", "t": "true", "f": "false"}


def _literal_error(text: str, position: int) -> str | None:
    """Go's words for a broken `null`, `true` or `false` (`in literal null (expecting 'u')`)."""
    literal = _LITERALS.get(text[position])
    if literal is None:
        return None
    for offset, expected in enumerate(literal):
        if position + offset >= len(text):
            return "unexpected EOF"
        if text[position + offset] != expected:
            return _at(text, position + offset, f"in literal {literal} (expecting '{expected}')")
    return None


_DIGITS = re.compile("[0-9]*")


def _number_error(text: str, position: int) -> str | None:
    """Go's error in the number starting at `position`, or None if Go reads it whole (`-`, `1.`
    and `1e+` are numbers Python stops short of)."""

    def digit_at(at: int, context: str) -> str | None:
        if at >= len(text):
            return "unexpected EOF"
        return None if "0" <= text[at] <= "9" else _at(text, at, context)

    if text[position] == "-":
        position += 1
        if error := digit_at(position, "in numeric literal"):
            return error
    position = position + 1 if text[position] == "0" else _end(_DIGITS, text, position)
    if text[position : position + 1] == ".":
        if error := digit_at(position + 1, "after decimal point in numeric literal"):
            return error
        position = _end(_DIGITS, text, position + 1)
    if text[position : position + 1] in ("e", "E"):
        position += 2 if text[position + 1 : position + 2] in ("+", "-") else 1
        return digit_at(position, "in exponent of numeric literal")
    return None


def _number_before(text: str, position: int) -> str | None:
    """Go's error where Python stopped after a number's digits (`[1.]`, `[1e]`), if it is one."""
    if text[position] not in ".eE" or not "0" <= text[position - 1] <= "9":
        return None
    start = position
    while start > 0 and text[start - 1] in "0123456789.eE+-":
        start -= 1
    return _number_error(text, start)


def _innermost(text: str, position: int) -> str:
    """Whether `position` is inside an object or an array (`{` or `[`)."""
    stack: list[str] = []
    for at, bracket in _brackets(text, 0):
        if at >= position:
            break
        if bracket in "[{":
            stack.append(bracket)
        elif stack:
            stack.pop()
    return stack[-1] if stack else ""


def _at(text: str, position: int, context: str) -> str:
    return f"invalid character {_quote(text[position])} {context}"


_ESCAPES = {
    char: "\\" + letter for char, letter in zip("\a\b\f\n\r\t\v\\'", "abfnrtv\\'", strict=True)
}


def _quote(char: str) -> str:
    """Go's `quoteChar` of the byte its scanner stopped at: a character's first byte, shown as the
    rune of that value (`'\\n'`, `'\\x01'`, `'\\u0080'`, `'Ã'` for the first byte of `é`)."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        code -= 0xDC00  # a byte that is not UTF-8, as `surrogateescape` decoded it
    elif code >= 0x80:
        code = char.encode("utf-8")[0]
    byte = chr(code)
    if byte in _ESCAPES:
        return f"'{_ESCAPES[byte]}'"
    if code < 0x20 or code == 0x7F:
        return f"'\\x{code:02x}'"
    return f"'\\u{code:04x}'" if not byte.isprintable() else f"'{byte}'"
