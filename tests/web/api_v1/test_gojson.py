"""Request bodies read as Go's `json.Decoder` reads them into Mailpit's structs: keys matched
case-insensitively, the first value only, `null` as no change, and Go's error texts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.web.api_v1.gojson import Field, GoJsonError, Kind, decode

FIELDS = (Field("Read", Kind.BOOL), Field("IDs", Kind.STRINGS), Field("Search", Kind.STRING))


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b'{"IDs":["a"],"Read":true}', {"IDs": ["a"], "Read": True}),
        (b'{"ids":["a"],"read":true,"SEARCH":"x"}', {"IDs": ["a"], "Read": True, "Search": "x"}),
        (b'{"IDs":["a"],"ids":["b"]}', {"IDs": ["b"]}),
        (b'{"IDs":["a",null]}', {"IDs": ["a", ""]}),
        (b'{"Read":null,"Search":null}', {}),
        (b'{"IDs":null}', {"IDs": None}),
        (b'{"Other":1}', {}),
        (b"null", {}),
        (b'  {"Read":false} trailing garbage', {"Read": False}),
        ('{"Search":"J\u00fcrgen"}'.encode(), {"Search": "J\u00fcrgen"}),
    ],
)
def test_read(body: bytes, fields: dict[str, object]) -> None:
    assert decode(body, FIELDS) == fields


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "EOF"),
        (b" \r\n\t", "EOF"),
        (b"{", "unexpected EOF"),
        (b'{"IDs":["a"', "unexpected EOF"),
        (b'{"Search":"abc', "unexpected EOF"),
        (b"x", "invalid character 'x' looking for beginning of value"),
        (b"nul", "unexpected EOF"),
        (b"tru3", "invalid character '3' in literal true (expecting 'e')"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b'{"IDs":["a" "b"]}', "invalid character '\"' after array element"),
        (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
        (b'{"a":"\n"}', "invalid character '\\n' in string literal"),
        (b'{"a":"\x01"}', "invalid character '\\x01' in string literal"),
        (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
        (b'{"Read":NaN}', "invalid character 'N' looking for beginning of value"),
        (b'{"IDs":[1,}', "invalid character '}' looking for beginning of value"),
        (b'{"Read":1}', "json: cannot unmarshal number into Go struct field .Read of type bool"),
        (
            b'{"Search":[]}',
            "json: cannot unmarshal array into Go struct field .Search of type string",
        ),
        (b'{"IDs":{}}', "json: cannot unmarshal object into Go struct field .IDs of type []string"),
        (b'{"IDs":[true]}', "json: cannot unmarshal bool into Go struct field .IDs of type string"),
        (
            b"5",
            "json: cannot unmarshal number into Go value of type struct { Read bool; IDs []string; Search string }",
        ),
    ],
)
def test_errors(body: bytes, error: str) -> None:
    with pytest.raises(GoJsonError) as raised:
        decode(body, FIELDS)
    assert str(raised.value) == error


def test_the_first_type_error_is_reported_and_the_rest_still_read() -> None:
    with pytest.raises(GoJsonError, match=r"\.Read of type bool"):
        decode(b'{"Read":"x","IDs":[1]}', FIELDS)


@given(st.binary(max_size=200))
def test_any_body_is_read_or_refused_with_a_message(body: bytes) -> None:
    message = ""
    try:
        decode(body, FIELDS)
    except GoJsonError as exc:
        message = str(exc) or "(empty)"
    assert message != "(empty)"
