"""Address lists and searchable fields of a message (pure): envelope-only recipients as Bcc, the
stored form read back whatever it holds, and the lower-cased search text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mxrelay.store.fields import NO_SENDER, AddressLists, FieldRow, searchable, with_envelope


def test_envelope_only_recipients_are_bcc() -> None:
    lists = AddressLists(
        ("Ann", "ann@x.org"),
        to=(("Bo", "Bo@X.org"),),
        cc=(("", "cy@x.org"),),
        bcc=(("", "d@x.org"),),
    )
    both = with_envelope(lists, ["bo@x.org", "CY@x.org", "d@x.org", "e@x.org", "E@X.org"])
    assert both.bcc == (("", "d@x.org"), ("", "e@x.org"))
    assert with_envelope(lists, ["bo@x.org"]) is lists


def test_stored_form_round_trips() -> None:
    lists = AddressLists(('Jürgen, "J"', "j@x.de"), (("", "a@b.c"),), reply_to=(("R", "r@x"),))
    assert AddressLists.from_json(lists.json()) == lists
    assert AddressLists().json() == '{"From":["",""],"To":[],"Cc":[],"Bcc":[],"ReplyTo":[]}'


@given(st.text(max_size=200))
def test_stored_form_read_back_from_anything(text: str) -> None:
    lists = AddressLists.from_json(text)
    assert isinstance(lists.sender, tuple)


def test_fallback_from_the_older_columns() -> None:
    lists = AddressLists.fallback("a@x.org", "b@x.org, c@x.org", ["b@x.org", "z@x.org"])
    assert lists == AddressLists(
        ("", "a@x.org"), (("", "b@x.org"), ("", "c@x.org")), bcc=(("", "z@x.org"),)
    )
    assert AddressLists.fallback("", "", []).sender == NO_SENDER


def test_search_text() -> None:
    assert searchable([("Alex SMITH", "Alex@Example.NET"), ("", "b@x"), ("Only Name", "")]) == (
        "alex smith <alex@example.net>, b@x, only name"
    )
    row = FieldRow(
        "id1", AddressLists(("Strasse", "S@x")), "Bounce@X", "Grüße ẞ", "<ID@X>", ("N@nx",)
    ).row()
    assert row["from_list"] == "strasse <s@x>"
    assert row["subject"] == "grüsse ss"
    assert (row["envelope_from"], row["refused_list"], row["to_list"]) == ("bounce@x", "n@nx", "")
