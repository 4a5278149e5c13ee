"""Go's scanner: the first JSON value of a body, or Go's words for where it stops."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mxrelay.web.api_v1
from mxrelay.web.api_v1.goscan import MAX_DEPTH, GoJsonError, JsonObject, parse


def test_the_first_value_is_read_and_what_follows_is_not() -> None:
    value = parse(b' {"a": [1, "x", null], "a": true} trailing {')
    assert isinstance(value, JsonObject)
    assert list(value) == [("a", [1.0, "x", None]), ("a", True)]  # repeated keys kept, in order
    assert parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "EOF"),
        (b"{", "unexpected EOF"),
        (b"tru3", "invalid character '3' in literal true (expecting 'e')"),
        (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        (b'{"a":"\\u12g4"}', "invalid character 'g' in \\u hexadecimal character escape"),
        (b"[1.]", "invalid character ']' after decimal point in numeric literal"),
        (b"[-Infinity]", "invalid character 'I' in numeric literal"),
        (b"\xff", "invalid character '\u00ff' looking for beginning of value"),
        (b"[" * (MAX_DEPTH + 1), "invalid character '[' exceeded max depth"),
    ],
)
def test_syntax_errors_in_gos_words(body: bytes, error: str) -> None:
    with pytest.raises(GoJsonError) as raised:
        parse(body)
    assert str(raised.value) == error


def test_goscan_is_the_only_module_of_the_api_that_parses_json() -> None:
    package = Path(mxrelay.web.api_v1.__file__).parent
    parsing = {"loads", "load", "JSONDecoder", "raw_decode", "object_pairs_hook"}
    readers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "arg", None)
            if name in parsing:
                readers.add(path.relative_to(package).as_posix())
    assert readers == {"goscan.py"}


@given(st.binary(max_size=200))
def test_any_body_is_read_or_refused_with_a_message(body: bytes) -> None:
    message = "read"
    try:
        parse(body)
    except GoJsonError as exc:
        message = str(exc)
    assert message
