"""Return-Path and Bcc computed from the envelope, as Mailpit's SMTP server writes them."""

from __future__ import annotations

from mxrelay.mime.envelope_fields import blind_recipients, with_envelope
from mxrelay.mime.fields import read_fields

HEAD = b"To: Alex <Alex@Example.net>\r\nCc: cc@example.net\r\nSubject: s\r\n\r\nbody"


def test_blind_recipients_are_added_to_a_new_bcc_field() -> None:
    fields = read_fields(HEAD)
    envelope = ["alex@example.net", "cc@example.net", "blind@example.net", "blind@example.net"]
    assert blind_recipients(fields, envelope) == ["blind@example.net"]
    shown = with_envelope(fields, "bounce@example.org", envelope)
    assert shown.as_map() == {
        "Bcc": ["blind@example.net"],
        "Cc": ["cc@example.net"],
        "Return-Path": ["<bounce@example.org>"],
        "Subject": ["s"],
        "To": ["Alex <Alex@Example.net>"],
    }
    assert fields.get("Bcc") == ""  # the message's own fields are not changed


def test_an_existing_bcc_and_return_path_are_extended_and_replaced() -> None:
    fields = read_fields(
        b"Return-Path: <old@example.org>\r\nBcc: named@example.net\r\nTo: a@example.net\r\n\r\n"
    )
    shown = with_envelope(
        fields, "new@example.org", ["a@example.net", "named@example.net", "x@y.test"]
    )
    assert shown.values("Bcc") == ["x@y.test, named@example.net"]
    assert shown.values("Return-Path") == ["<new@example.org>"]
    same = with_envelope(fields, "old@example.org", ["a@example.net"])
    assert same.items == fields.items


def test_null_sender_replaces_a_return_path_and_adds_none() -> None:
    fields = read_fields(b"Return-Path: <x@example.org>\r\n\r\n")
    assert with_envelope(fields, "", []).values("Return-Path") == ["<>"]
    assert with_envelope(read_fields(b"To: a@b.test\r\n\r\n"), "", []).values("Return-Path") == []
