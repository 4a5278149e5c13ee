"""Request bodies as Mailpit (Go's `encoding/json`) reads them, within a size bound.

`read_body` takes at most `limit` bytes of a request (`TooLarge` past them, before the rest is
read). `decode_object` parses JSON keeping every key in order, and `GoObject` looks fields up as Go
fills a struct: a key matches a field name case-insensitively, and when several keys match, the
last one wins; `null` leaves a field at its zero value; a value of the wrong JSON type is an error
worded as Go words it (`json: cannot unmarshal number into Go struct field …`). Only what the
API's request structs need is here: strings, lists of strings, objects, lists of objects and
string maps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request


class BodyError(ValueError):
    """The body cannot be read as the request asks: 400 with this text."""


class TooLarge(BodyError):
    """The body is larger than the route takes: 413."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"http: request body too large (over {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"http: request body too large (over {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _pairs(pairs: list[tuple[str, Any]]) -> GoObject:
    return GoObject(pairs)


def decode_object(raw: bytes, struct: str) -> GoObject:
    """The body as a JSON object (`struct` names the Go type in error texts)."""
    if not raw.strip():
        raise BodyError("EOF")
    try:
        value = json.loads(raw, object_pairs_hook=_pairs)
    except UnicodeDecodeError:
        raise BodyError("invalid character in request body (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"invalid JSON at offset {exc.pos}: {exc.msg}") from None
    except RecursionError:
        raise BodyError("exceeded max depth") from None
    if not isinstance(value, GoObject):
        raise BodyError(f"json: cannot unmarshal {_kind(value)} into Go value of type {struct}")
    value.path = struct
    return value


class GoObject:
    """A JSON object's keys in order, looked up as Go's decoder fills a struct."""

    def __init__(self, pairs: list[tuple[str, Any]], path: str = "") -> None:
        self.pairs = pairs
        self.path = path

    def _raw(self, name: str) -> Any:
        folded = name.casefold()
        found = None
        for key, value in self.pairs:
            if key.casefold() == folded:
                found = value
        return found

    def _wrong(self, name: str, value: Any, go_type: str) -> BodyError:
        return BodyError(
            f"json: cannot unmarshal {_kind(value)} into Go struct field {self.path}.{name} "
            f"of type {go_type}"
        )

    def text(self, name: str) -> str:
        value = self._raw(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._wrong(name, value, "string")
        return value

    def boolean(self, name: str) -> bool:
        value = self._raw(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._wrong(name, value, "bool")
        return value

    def texts(self, name: str) -> list[str]:
        value = self._raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(name, value, "[]string")
        for item in value:
            if item is not None and not isinstance(item, str):
                raise self._wrong(name, item, "string")
        return [item or "" for item in value]

    def object(self, name: str) -> GoObject:
        value = self._raw(name)
        if value is None:
            return GoObject([], f"{self.path}.{name}")
        if not isinstance(value, GoObject):
            raise self._wrong(name, value, "struct")
        return GoObject(value.pairs, f"{self.path}.{name}")

    def objects(self, name: str) -> list[GoObject]:
        value = self._raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(name, value, "[]struct")
        found = []
        for item in value:
            if item is None:
                item = GoObject([])
            if not isinstance(item, GoObject):
                raise self._wrong(name, item, "struct")
            found.append(GoObject(item.pairs, f"{self.path}.{name}"))
        return found

    def string_map(self, name: str) -> list[tuple[str, str]]:
        """A `map[string]string` in the order written (a repeated key: the last value)."""
        value = self._raw(name)
        if value is None:
            return []
        if not isinstance(value, GoObject):
            raise self._wrong(name, value, "map[string]string")
        found: dict[str, str] = {}
        for key, item in value.pairs:
            if item is not None and not isinstance(item, str):
                raise self._wrong(name, item, "string")
            found[key] = item or ""
        return list(found.items())

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.pairs)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, GoObject):
        return "object"
    return "null"
