"""Request bodies read as Mailpit reads them: Go's `json.NewDecoder(body).Decode(&data)` into a
struct of declared fields. The one place a JSON request body is read: `goscan.parse` reads the
body's first JSON value, with Go's words for every syntax error, and `decode` fills a struct from
it as Go's decoder does: members in the order written, each key matching a field exactly or else
case-insensitively, so that a repeated key's last value wins (an object merging into what the
earlier one filled, as Go decodes into the existing value); unknown keys ignored; `null` leaving a
bool, a string or a struct as it was and emptying a slice or a map; a value of the wrong JSON type
leaving its field as it was while the rest is still read, and the first such error in the order
written reported: `json: cannot unmarshal string into Go struct field .Read of type bool`. Every
struct here is anonymous, as Mailpit's request bodies are, so Go names no type before a field's
path (`.From.Email`) and spells the whole struct where the body is not an object at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from mxrelay.web.api_v1.goscan import GoJsonError as GoJsonError
from mxrelay.web.api_v1.goscan import JsonObject, parse


@dataclass(frozen=True, slots=True)
class Scalar:
    name: str
    python: type


@dataclass(frozen=True, slots=True)
class Slice:
    item: GoType

    @property
    def name(self) -> str:
        return f"[]{self.item.name}"


@dataclass(frozen=True, slots=True)
class StringMap:
    item: GoType

    @property
    def name(self) -> str:
        return f"map[string]{self.item.name}"


@dataclass(frozen=True, slots=True)
class Struct:
    fields: tuple[Field, ...]

    @property
    def name(self) -> str:
        """Go's name of an anonymous struct type: `struct { Read bool; IDs []string }`."""
        if not self.fields:
            return "struct {}"
        return "struct { " + "; ".join(f"{f.name} {f.kind.name}" for f in self.fields) + " }"


GoType: TypeAlias = "Scalar | Slice | StringMap | Struct"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: GoType


BOOL = Scalar("bool", bool)
STRING = Scalar("string", str)
STRINGS = Slice(STRING)


@dataclass(frozen=True, slots=True)
class GoObject:
    """A struct as the decoder filled it: every field, at its zero value where the body set none
    (`""`, `False`, an empty list or map, a struct of zero values)."""

    values: Mapping[str, Any]

    def text(self, name: str) -> str:
        return cast(str, self.values[name])

    def boolean(self, name: str) -> bool:
        return cast(bool, self.values[name])

    def texts(self, name: str) -> list[str]:
        return list(self.values[name] or ())

    def object(self, name: str) -> GoObject:
        return GoObject(self.values[name])

    def objects(self, name: str) -> list[GoObject]:
        return [GoObject(item) for item in self.values[name] or ()]

    def string_map(self, name: str) -> list[tuple[str, str]]:
        """A `map[string]string` in the order written (a repeated key: the last value)."""
        return list((self.values[name] or {}).items())


def decode(body: bytes, fields: Sequence[Field]) -> GoObject:
    """The struct of `fields` filled from the body as Go fills it; GoJsonError as Go fails."""
    struct = Struct(tuple(fields))
    errors: list[str] = []
    filled = _fill(parse(body), struct, _zero(struct), None, errors)
    if errors:
        raise GoJsonError(errors[0])
    return GoObject(filled)


_KINDS = (
    (bool, "bool"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (JsonObject, "object"),
)


def kind_of(value: Any) -> str:
    """The JSON kind Go names in a type error (`number`, `array`, …) of a parsed value."""
    return next(name for python, name in _KINDS if isinstance(value, python))


def _zero(kind: GoType) -> Any:
    if isinstance(kind, Struct):
        return {field.name: _zero(field.kind) for field in kind.fields}
    if isinstance(kind, Scalar):
        return kind.python()
    return None


def _fill(
    value: Any, kind: GoType, current: Any, path: tuple[str, ...] | None, errors: list[str]
) -> Any:
    """`value` decoded into `current` (a field's value so far) as Go decodes it; a type error is
    kept in `errors` (where the struct field is `path`, None above every field) and `current`
    stays."""
    if value is None:
        return None if isinstance(kind, Slice | StringMap) else current
    if isinstance(kind, Scalar) and isinstance(value, kind.python):
        return _text(value) if isinstance(value, str) else value
    if isinstance(kind, Slice) and isinstance(value, list):
        old = current or []
        return [
            _fill(item, kind.item, old[n] if n < len(old) else _zero(kind.item), path, errors)
            for n, item in enumerate(value)
        ]
    if isinstance(kind, StringMap) and isinstance(value, JsonObject):
        found = dict(current or {})
        for key, item in value:
            found[_text(key)] = _fill(item, kind.item, _zero(kind.item), path, errors)
        return found
    if isinstance(kind, Struct) and isinstance(value, JsonObject):
        found = dict(current)
        for key, item in value:
            field = _field(kind.fields, key)
            if field is not None:
                at = (*(path or ()), field.name)
                found[field.name] = _fill(item, field.kind, found[field.name], at, errors)
        return found
    if not errors:
        into = f"Go value of type {kind.name}"
        if path is not None:
            into = f"Go struct field .{'.'.join(path)} of type {kind.name}"
        errors.append(f"json: cannot unmarshal {kind_of(value)} into {into}")
    return current


_GO_FOLDS = str.maketrans({"\u212a": "k", "\u017f": "s"})
"""The two characters outside ASCII that Go's case folding takes for ASCII letters (KELVIN SIGN,
LATIN SMALL LETTER LONG S)."""


def _field(fields: Sequence[Field], key: str) -> Field | None:
    """The field a key fills: the one named exactly so, else one named so whatever the case."""
    for candidate in fields:
        if candidate.name == key:
            return candidate
    folded = key.translate(_GO_FOLDS)
    if not folded.isascii():
        return None
    for candidate in fields:
        if candidate.name.lower() == folded.lower():
            return candidate
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """A string as Go reads it: a lone surrogate escape (`\\ud800`) is U+FFFD (Python would keep
    it, and it could not be encoded again)."""
    if value.isascii():  # in constant time, where a search takes as long as the string
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value
