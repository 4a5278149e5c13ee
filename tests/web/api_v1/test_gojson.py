"""Request bodies read as Go's `json.Decoder` reads them into Mailpit's structs: the first value
only, keys matched case-insensitively in the order written, `null` as Go takes it, and Go's words
for every syntax and type error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.web.api_v1.gojson import (
    BOOL,
    STRING,
    STRINGS,
    Field,
    GoJsonError,
    Slice,
    StringMap,
    Struct,
    decode,
    kind_of,
)
from mxrelay.web.api_v1.goscan import MAX_DEPTH, parse

FIELDS = (Field("Read", BOOL), Field("IDs", STRINGS), Field("Search", STRING))
STRUCT = "struct { Read bool; IDs []string; Search string }"
MAILBOX = Struct((Field("Name", STRING), Field("Email", STRING)))
NESTED = (
    Field("From", MAILBOX),
    Field("To", Slice(MAILBOX)),
    Field("Subject", STRING),
    Field("Headers", StringMap(STRING)),
)
ZERO = {"Read": False, "IDs": None, "Search": ""}


@pytest.mark.parametrize(
    ("body", "values"),
    [
        (b'{"IDs":["a"],"Read":true}', {"IDs": ["a"], "Read": True}),
        (b'{"ids":["a"],"read":true,"SEARCH":"x"}', {"IDs": ["a"], "Read": True, "Search": "x"}),
        ('{"\u017fearch":"x"}'.encode(), {"Search": "x"}),  # Go folds LONG S to s
        ('{"Ids":["x"],"ID\u0455":["y"]}'.encode(), {"IDs": ["x"]}),  # not a Cyrillic s
        (b'{"IDs":["a"],"ids":["b"]}', {"IDs": ["b"]}),
        (b'{"IDs":["a",null]}', {"IDs": ["a", ""]}),
        (b'{"IDs":[]}', {"IDs": []}),
        (b'{"Read":true,"Search":"x","Read":null,"Search":null}', {"Read": True, "Search": "x"}),
        (b'{"IDs":["a"],"IDs":null}', {}),
        (b'{"Other":1,"Another":{"deep":[1,{"x":null}]}}', {}),
        (b"null", {}),
        (b'  {"Read":false} trailing garbage', {}),
        ('{"Search":"J\u00fcrgen"}'.encode(), {"Search": "J\u00fcrgen"}),
        (b'{"Search":"a\xffb"}', {"Search": "a\ufffdb"}),  # each byte that is not UTF-8
        (b'{"Search":"\\ud800\\ud83d\\ude00"}', {"Search": "\ufffd\U0001f600"}),
        (b'{"IDs":["' + b"9" * 5000 + b'"]}', {"IDs": ["9" * 5000]}),
    ],
)
def test_read(body: bytes, values: dict[str, object]) -> None:
    assert decode(body, FIELDS).values == {**ZERO, **values}


def test_nested_structs_lists_and_maps_are_filled_as_go_fills_them() -> None:
    body = decode(
        b'{"from":{"Name":"A"},"FROM":{"email":"a@example.org"},'
        b'"To":[{"Name":"B","Email":"b@example.org"},null],"to":[{"Email":"c@example.org"}],'
        b'"Headers":{"X-A":"1","X-B":null},"headers":{"X-A":"2"}}',
        NESTED,
    )
    # A repeated key decodes into what the earlier one filled: the struct and the list's first
    # element merge, the list is cut to the later length, the map keeps its earlier keys.
    assert body.object("From").text("Name") == "A"
    assert body.object("From").text("Email") == "a@example.org"
    assert [(t.text("Name"), t.text("Email")) for t in body.objects("To")] == [
        ("B", "c@example.org")
    ]
    assert body.string_map("Headers") == [("X-A", "2"), ("X-B", "")]
    assert body.text("Subject") == ""
    empty = decode(b"{}", NESTED)
    assert (empty.objects("To"), empty.string_map("Headers")) == ([], [])
    assert empty.object("From").values == {"Name": "", "Email": ""}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "EOF"),
        (b" \r\n\t", "EOF"),
        (b"{", "unexpected EOF"),
        (b'{"IDs":["a"', "unexpected EOF"),
        (b'{"Search":"abc', "unexpected EOF"),
        (b'{"Search":"\\', "unexpected EOF"),
        (b"x", "invalid character 'x' looking for beginning of value"),
        (b"nul", "unexpected EOF"),
        (b"tru3", "invalid character '3' in literal true (expecting 'e')"),
        (b"[fals]", "invalid character ']' in literal false (expecting 'e')"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b'{"IDs":["a" "b"]}', "invalid character '\"' after array element"),
        (b'{"a":["}",{"b":1} 2]}', "invalid character '2' after array element"),
        (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
        (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        (b'{"IDs":[1,}', "invalid character '}' looking for beginning of value"),
        (b"[1,]", "invalid character ']' looking for beginning of value"),
        (b'{"a":"\n"}', "invalid character '\\n' in string literal"),
        (b'{"a":"\x01"}', "invalid character '\\x01' in string literal"),
        (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
        (b'{"a":"\\u12g4"}', "invalid character 'g' in \\u hexadecimal character escape"),
        (b'"\\ud800\\u00zz"', "invalid character 'z' in \\u hexadecimal character escape"),
        (b'"\\u12', "unexpected EOF"),
        (b"[-x]", "invalid character 'x' in numeric literal"),
        (b"[1.]", "invalid character ']' after decimal point in numeric literal"),
        (b"[1e+]", "invalid character ']' in exponent of numeric literal"),
        (b"[01]", "invalid character '1' after array element"),
        (b"-", "unexpected EOF"),
        (b"1.", "unexpected EOF"),
        (b"2.x", "invalid character 'x' after decimal point in numeric literal"),
        (b'{"Read":NaN}', "invalid character 'N' looking for beginning of value"),
        (b"[Infinity]", "invalid character 'I' looking for beginning of value"),
        (b"[-Infinity]", "invalid character 'I' in numeric literal"),
        (b"\\", "invalid character '\\\\' looking for beginning of value"),
        (b"\x7f", "invalid character '\\x7f' looking for beginning of value"),
        (b"\xff", "invalid character '\u00ff' looking for beginning of value"),
        ("\u00e9".encode(), "invalid character '\u00c3' looking for beginning of value"),
        (b"\xc2\xa0", "invalid character '\u00c2' looking for beginning of value"),
        ("\ufeff{}".encode(), "invalid character '\u00ef' looking for beginning of value"),
        (b"[" * (MAX_DEPTH + 1), "invalid character '[' exceeded max depth"),
        (b'{"a":' * (MAX_DEPTH + 1), "invalid character '{' exceeded max depth"),
        (b"[" * MAX_DEPTH + b"1 [", "invalid character '[' after array element"),
        (b'{"Search":"' + b"[" * (MAX_DEPTH + 1), "unexpected EOF"),
        (b'{"Search":"\n' + b"[" * (MAX_DEPTH + 1), "invalid character '\\n' in string literal"),
        (b'{"Read":1}', "json: cannot unmarshal number into Go struct field .Read of type bool"),
        (
            b'{"Search":[]}',
            "json: cannot unmarshal array into Go struct field .Search of type string",
        ),
        (b'{"IDs":{}}', "json: cannot unmarshal object into Go struct field .IDs of type []string"),
        (b'{"IDs":[true]}', "json: cannot unmarshal bool into Go struct field .IDs of type string"),
        (b"5", f"json: cannot unmarshal number into Go value of type {STRUCT}"),
        (b"1" * 5000, f"json: cannot unmarshal number into Go value of type {STRUCT}"),
        (b'"{}"', f"json: cannot unmarshal string into Go value of type {STRUCT}"),
        (
            b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
            f"json: cannot unmarshal array into Go value of type {STRUCT}",
        ),
    ],
)
def test_errors(body: bytes, error: str) -> None:
    with pytest.raises(GoJsonError) as raised:
        decode(body, FIELDS)
    assert str(raised.value) == error


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"From":{"Email":5}}', ".From.Email of type string"),
        (b'{"From":[]}', ".From of type struct { Name string; Email string }"),
        (b'{"To":"a@example.net"}', ".To of type []struct { Name string; Email string }"),
        (b'{"To":[{"Email":"a"},7]}', ".To of type struct { Name string; Email string }"),
        (b'{"To":[{"Email":"a"},{"Name":false}]}', ".To.Name of type string"),
        (b'{"Headers":{"X-A":1}}', ".Headers of type string"),
        (b'{"Headers":["X-A"]}', ".Headers of type map[string]string"),
    ],
)
def test_a_type_error_names_the_path_of_struct_fields_as_go_does(body: bytes, error: str) -> None:
    with pytest.raises(GoJsonError) as raised:
        decode(body, NESTED)
    kind = str(raised.value).split(" ")[3]
    assert str(raised.value) == f"json: cannot unmarshal {kind} into Go struct field {error}"


def test_the_first_type_error_in_the_order_written_is_reported_after_reading_the_rest() -> None:
    with pytest.raises(GoJsonError, match=r"\.Read of type bool"):
        decode(b'{"Read":"x","IDs":[1]}', FIELDS)
    with pytest.raises(GoJsonError, match=r"\.Subject of type string"):
        decode(b'{"Subject":5,"From":5}', NESTED)
    with pytest.raises(GoJsonError, match=r"\.Subject of type string"):
        decode(b'{"Subject":5,"Subject":"fine"}', NESTED)  # a later value does not undo it
    with pytest.raises(GoJsonError, match="after array element"):
        decode(b'{"Read":"x","IDs":[1 2]}', FIELDS)  # the whole value is scanned first


def test_one_kind_function_names_every_parsed_value() -> None:
    parsed = parse(b'[true, 1.5e3, -0, "s", [], {"k": null}]')
    assert [kind_of(value) for value in parsed] == [
        "bool",
        "number",
        "number",
        "string",
        "array",
        "object",
    ]


@given(st.binary(max_size=200))
def test_any_body_is_read_or_refused_with_a_message(body: bytes) -> None:
    message = "read"
    try:
        decode(body, NESTED)
    except GoJsonError as exc:
        message = str(exc)
    assert message


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_json_python_writes_is_read_or_refused_with_a_type_error(value: Any) -> None:
    message = "json: cannot unmarshal (read)"
    try:
        decode(json.dumps(value).encode(), NESTED)
    except GoJsonError as exc:
        message = str(exc)
    assert message.startswith("json: cannot unmarshal ")
