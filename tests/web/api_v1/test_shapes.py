"""The Message object for any bytes: exactly Mailpit's keys, JSON-encodable, never an error."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mxrelay.store.message_log import MessageView, RecipientView
from mxrelay.web.api_v1.shapes import headers, message
from tests.support.mime_trees import Leaf, Multi, render, trees
from tests.web.api_v1.test_message import MESSAGE_KEYS

VIEW = MessageView(
    id="01JH00000000000000000000AB",
    received_at=1767614400.123,
    client_address="192.0.2.7",
    helo="app.example.net",
    username=None,
    tls_version=None,
    mail_from="app@example.org",
    size=0,
    sha256="",
    subject="kept subject",
    header_from="kept@example.org",
    header_to="",
    message_id_header="kept@id",
    transforms=(),
    transform_reports=(),
    body_pruned=False,
    recipients=(RecipientView(0, "b@example.net", "held", 0, None, None, None),),
    attempts=(),
)


def check(raw: bytes | None) -> dict[str, object]:
    shown = message(VIEW, raw)
    assert set(shown) == MESSAGE_KEYS
    json.dumps(shown, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return shown


@given(st.binary(max_size=2048))
def test_any_bytes(raw: bytes) -> None:
    check(raw)
    assert all(isinstance(v, list) for v in headers(VIEW, raw).values())


@given(trees, st.sampled_from([b"\r\n", b"\n"]))
def test_generated_messages(tree: Leaf | Multi, newline: bytes) -> None:
    shown = check(render(tree, newline))
    assert shown["Bcc"] == []  # b@example.net is the To field's
    assert shown["ReturnPath"] == "app@example.org"


def test_a_pruned_body_shows_what_the_log_kept() -> None:
    shown = check(None)
    assert (shown["Subject"], shown["MessageID"], shown["From"]) == (
        "kept subject",
        "kept@id",
        {"Name": "", "Address": "kept@example.org"},
    )
    assert shown["Date"] == "2026-01-05T12:00:00.123Z"
    assert (shown["Text"], shown["Inline"], shown["Attachments"]) == ("", [], [])


def test_dates_as_go_writes_them() -> None:
    shown = check(b"Date: Mon, 5 Jan 2026 13:00:00 -0000\r\n\r\n")
    assert shown["Date"] == "2026-01-05T13:00:00Z"
    assert check(b"Date: Mon, 5 Jan 2026 13:00:00 -0330\r\n\r\n")["Date"] == (
        "2026-01-05T13:00:00-03:30"
    )
    assert check(b"Date: not a date\r\n\r\n")["Date"] == "2026-01-05T12:00:00.123Z"
