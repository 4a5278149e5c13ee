"""Request bodies read as Mailpit reads them: Go's `json.NewDecoder(body).Decode(&data)` into a
struct of declared fields.

What Mailpit's clients rely on, and what its answers say: keys match fields case-insensitively
(`ids` fills `IDs`; an exact match wins, a later key overwrites an earlier one), unknown keys are
ignored, only the first JSON value is read (what follows it is not looked at), `null` leaves a
field as it was, and the errors are Go's words: `EOF` for an empty body, `unexpected EOF`,
`invalid character 'x' looking for beginning of value`, `json: cannot unmarshal string into Go
struct field .Read of type bool`. A value of the wrong type leaves its field unset and the rest
is still read; the first such error is the one reported, as Go does.

The body has been bounded before it gets here (`context.read_body`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    BOOL = "bool"
    STRING = "string"
    STRINGS = "[]string"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind


class GoJsonError(ValueError):
    """The body is not what the struct takes; `str()` is Go's message."""


_WHITESPACE = " \t\r\n"
_CONTEXTS = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": (
        "looking for beginning of object key string"
    ),
    "Expecting ':' delimiter": "after object key",
    "Invalid control character at": "in string literal",
    "Invalid \\escape": "in string escape code",
}


def struct_type(fields: Sequence[Field]) -> str:
    """Go's name of an anonymous struct type: `struct { Read bool; IDs []string }`."""
    return "struct { " + "; ".join(f"{f.name} {f.kind.value}" for f in fields) + " }"


def decode(body: bytes, fields: Sequence[Field]) -> dict[str, Any]:
    """The fields the body sets (by declared name); GoJsonError as Go's decoder fails."""
    value = _first_value(body)
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = _value_kind(value)
        raise GoJsonError(
            f"json: cannot unmarshal {kind} into Go value of type {struct_type(fields)}"
        )
    found: dict[str, Any] = {}
    first_error: str | None = None
    for key, item in value.items():
        target = _field(fields, key)
        if target is None:
            continue
        try:
            converted = _convert(item, target)
        except GoJsonError as exc:
            first_error = first_error or str(exc)
            continue
        if item is None and target.kind is not Kind.STRINGS:
            continue  # null leaves a bool or a string as it was
        found[target.name] = converted
    if first_error is not None:
        raise GoJsonError(first_error)
    return found


def _field(fields: Sequence[Field], key: str) -> Field | None:
    for candidate in fields:
        if candidate.name == key:
            return candidate
    folded = key.casefold()
    for candidate in fields:
        if candidate.name.casefold() == folded:
            return candidate
    return None


def _convert(item: Any, target: Field) -> Any:
    if target.kind is Kind.STRINGS:
        if item is None:
            return None
        if not isinstance(item, list):
            raise _type_error(item, target.name, target.kind.value)
        converted: list[str] = []
        error: GoJsonError | None = None
        for element in item:
            if element is None:
                converted.append("")
            elif isinstance(element, str):
                converted.append(element)
            else:
                error = error or _type_error(element, target.name, "string")
        if error is not None:
            raise error
        return converted
    wanted = bool if target.kind is Kind.BOOL else str
    if item is not None and not isinstance(item, wanted):
        raise _type_error(item, target.name, target.kind.value)
    return item


def _type_error(item: Any, name: str, type_name: str) -> GoJsonError:
    return GoJsonError(
        f"json: cannot unmarshal {_value_kind(item)} into Go struct field .{name} of type "
        f"{type_name}"
    )


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Constant(ValueError):
    """NaN or Infinity, which Python's decoder takes and Go's does not."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _refuse_constant(name: str) -> Any:
    raise _Constant(name)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _first_value(body: bytes) -> Any:
    text = body.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if start == len(text):
        raise GoJsonError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise GoJsonError(_syntax_error(text, exc)) from None
    except _Constant as exc:
        where = text.find(exc.name.lstrip("-"), start)
        raise GoJsonError(_at(text, where, "looking for beginning of value")) from None
    except RecursionError:
        raise GoJsonError("exceeded max depth") from None
    return value


def _syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    position = exc.pos
    if position >= len(text):
        return "unexpected EOF"
    if exc.msg == "Unterminated string starting at":
        return "unexpected EOF"
    literal = _literal_error(text, position) if exc.msg == "Expecting value" else None
    if literal is not None:
        return literal
    if exc.msg == "Expecting ',' delimiter":
        inside = _innermost(text, position)
        return _at(
            text,
            position,
            "after object key:value pair" if inside == "{" else "after array element",
        )
    for start, context in _CONTEXTS.items():
        if exc.msg.startswith(start):
            if context == "in string escape code":
                position += 1
            return _at(text, position, context)
    return _at(text, position, "looking for beginning of value")


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
            found = _quote(text[position + offset])
            return f"invalid character {found} in literal {literal} (expecting {_quote(expected)})"
    return None


def _at(text: str, position: int, context: str) -> str:
    return f"invalid character {_quote(text[position])} {context}"


def _quote(char: str) -> str:
    """Go's `quoteChar`: `'x'`, `'\\''`, `'"'`, `'\\n'`, `'\\x01'`."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    escaped = json.dumps(char)[1:-1] if char.isprintable() is False else char
    escaped = {"\\u000b": "\\v", "\\u0007": "\\a", "\\u000c": "\\f"}.get(escaped, escaped)
    if escaped.startswith("\\u00"):
        escaped = "\\x" + escaped[4:]
    return f"'{escaped}'"


def _innermost(text: str, position: int) -> str:
    """Whether `position` is inside an object or an array (`{` or `[`)."""
    stack: list[str] = []
    quoted = escaped = False
    for char in text[:position]:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""
