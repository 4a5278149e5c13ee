"""Calendar transform: the real-sender corpus, chosen layouts, broken MIME, and properties over
generated MIME trees. Output is judged by the stdlib parser (tests/support/mime_trees.py)."""

from __future__ import annotations

import email.message
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.ics import REMOVED_NOTICE, PartChange, transform_calendar
from mxrelay.mime.parse import parse_message
from mxrelay.model import IcsAction
from tests.support.mime_trees import (
    CORPUS,
    Leaf,
    Multi,
    corpus_files,
    decoded_payload,
    defects,
    leaves,
    parse,
    render,
    tree_leaves,
    trees,
)

LEFT_ALONE = {"python-signed-invitation.eml", "python-forwarded-invitation.eml"}
"""Calendar data under multipart/signed, or in an attached message, is left alone by default."""
NOTHING_LEFT = {"python-calendar-only.eml", "nodemailer-ical-only.eml"}
"""Messages whose only content is calendar data (strip replaces the body with a notice)."""


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


CORPUS_FILES = corpus_files()


def test_corpus_is_present() -> None:
    names = {p.name for p in CORPUS_FILES}
    assert len(names) >= 18
    assert {"nodemailer-calcom-request.eml", "python-outlook-request.eml"} <= names


def _calendar_payloads(data: bytes) -> set[bytes]:
    return {decoded_payload(leaf) for leaf in leaves(parse(data)) if leaf.calendar}


@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_corpus_strip(path: Path) -> None:
    data = path.read_bytes()
    result = transform_calendar(data, IcsAction.STRIP)
    before, after = leaves(parse(data)), leaves(parse(result.data))
    assert not defects(parse(result.data))
    if path.name in LEFT_ALONE:
        assert result.data == data
        assert not result.report.changed
        return
    assert any(leaf.calendar for leaf in before)
    assert not any(leaf.calendar for leaf in after)
    kept = [leaf for leaf in before if not leaf.calendar]
    if path.name in NOTHING_LEFT:
        assert not kept
        assert result.report.body_replaced
        assert [leaf.content_type for leaf in after] == ["text/plain"]
        assert REMOVED_NOTICE in after[0].payload
    else:
        assert after == kept  # headers and payloads of every other leaf, in order
    removed = sum(1 for leaf in before if leaf.calendar)
    assert len(result.report.parts) == removed
    assert {p.change for p in result.report.parts} == {PartChange.REMOVED}
    assert transform_calendar(result.data, IcsAction.STRIP).data == result.data


@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_corpus_attach(path: Path) -> None:
    data = path.read_bytes()
    result = transform_calendar(data, IcsAction.ATTACH)
    assert not defects(parse(result.data))
    if path.name in LEFT_ALONE:
        assert result.data == data
        return
    before, after = leaves(parse(data)), leaves(parse(result.data))
    calendars = [leaf for leaf in after if leaf.calendar]
    assert calendars
    for leaf in calendars:
        assert leaf.content_type == "application/ics"
        assert leaf.disposition == "attachment"
        assert not leaf.in_alternative
        assert leaf.filename
        assert leaf.filename.lower().endswith((".ics", ".ifb", ".vcs"))
    assert _calendar_payloads(result.data) == _calendar_payloads(data)
    assert [leaf for leaf in after if not leaf.calendar] == [
        leaf for leaf in before if not leaf.calendar
    ]
    assert transform_calendar(result.data, IcsAction.ATTACH).data == result.data


def test_nodemailer_invitation_keeps_one_attachment() -> None:
    data = (CORPUS / "nodemailer-calcom-request.eml").read_bytes()
    result = transform_calendar(data, IcsAction.ATTACH)
    assert [(p.path, p.change) for p in result.report.parts] == [
        ("1.3", PartChange.DUPLICATE_REMOVED)
    ]
    # The event.ics attachment nodemailer adds was already plain: its bytes did not move.
    start = data.index(b"Content-Type: application/ics; name=event.ics")
    assert data[start:] in result.data


def test_outlook_alternative_root_is_wrapped_for_attach() -> None:
    data = (CORPUS / "python-outlook-request.eml").read_bytes()
    result = transform_calendar(data, IcsAction.ATTACH)
    msg = parse(result.data)
    assert msg.get_content_type() == "multipart/mixed"
    parts = [p for p in msg.get_payload() if isinstance(p, email.message.Message)]
    assert [p.get_content_type() for p in parts] == ["multipart/alternative", "application/ics"]
    assert parts[1].get_filename() == "invite.ics"
    assert [p.change for p in result.report.parts] == [PartChange.MOVED]
    # The header fields other than Content-Type keep their exact bytes and order.
    head = data[: data.index(b"\r\n\r\n")].split(b"\r\n")
    new_head = result.data[: result.data.index(b"\r\n\r\n")].split(b"\r\n")
    assert [f for f in head if not f.startswith(b"Content-Type")] == [
        f for f in new_head if not f.startswith(b"Content-Type")
    ]


def test_forwarded_invitation_left_alone_unless_asked() -> None:
    data = (CORPUS / "python-forwarded-invitation.eml").read_bytes()
    plain = transform_calendar(data, IcsAction.STRIP)
    assert plain.data == data
    assert not plain.report.changed
    deep = transform_calendar(data, IcsAction.STRIP, descend_messages=True)
    assert [p.path for p in deep.report.parts] == ["2.1.3", "2.2"]
    assert not any(leaf.calendar for leaf in leaves(parse(deep.data), descend=True))
    assert not defects(parse(deep.data))


def test_lf_and_crlf_inputs_give_the_same_result() -> None:
    crlf = (CORPUS / "python-google-request.eml").read_bytes()
    lf = crlf.replace(b"\r\n", b"\n")
    for action in IcsAction:
        out_crlf = transform_calendar(crlf, action).data
        out_lf = transform_calendar(lf, action).data
        assert b"\r" not in out_lf
        assert out_crlf.replace(b"\r\n", b"\n") == out_lf


def test_eight_bit_and_binary_parts_survive() -> None:
    data = (CORPUS / "python-eight-bit.eml").read_bytes()
    result = transform_calendar(data, IcsAction.STRIP)
    text = "Einladung zur Fête – 会議".encode()
    assert text in data
    assert text in result.data
    # The binary attachment, its headers and the close delimiter after it are untouched.
    blob = data[data.index(b"Content-Type: application/octet-stream") :]
    assert result.data.endswith(blob)


def test_single_remaining_part_stays_a_valid_multipart() -> None:
    data = (
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n"
        b"--b--\r\n"
    )
    result = transform_calendar(data, IcsAction.STRIP)
    assert result.data == (
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b--\r\n"
    )


def test_calendar_only_root_gets_notice() -> None:
    data = b"Subject: x\nContent-Type: text/calendar; method=CANCEL\nContent-Transfer-Encoding: 7bit\n\nBEGIN:VCALENDAR\n"
    result = transform_calendar(data, IcsAction.STRIP)
    assert result.data == (
        b"Subject: x\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n"
        + REMOVED_NOTICE.encode()
        + b"\n"
    )
    assert result.report.body_replaced
    retyped = transform_calendar(data, IcsAction.ATTACH)
    assert retyped.data == (
        b"Subject: x\n"
        b'Content-Type: application/ics; name="invite.ics"\n'
        b'Content-Disposition: attachment; filename="invite.ics"\n'
        b"Content-Transfer-Encoding: 7bit\n\nBEGIN:VCALENDAR\n"
    )


def _nested(depth: int) -> bytes:
    """A well-formed message with `depth` nested multiparts around a calendar part."""
    inner = b"Content-Type: text/calendar\r\n\r\nX"
    for level in range(depth):
        inner = b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d--" % (
            level,
            level,
            inner,
            level,
        )
    return inner


def test_deep_but_allowed_nesting_is_transformed() -> None:
    result = transform_calendar(_nested(30), IcsAction.STRIP)
    assert result.report.body_replaced


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/calendar\r\n\r\nX\r\n",
            "without a boundary",
        ),
        (
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno delimiter at all\r\n",
            "boundary not found",
        ),
        (
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/calendar\r\n\r\nBEGIN",
            "not closed",
        ),
        (_nested(60), "nesting deeper"),
        (
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
            + b"--x\r\nContent-Type: text/calendar\r\n\r\nX\r\n" * 10_001
            + b"--x--\r\n",
            "more than 10000 parts",
        ),
    ],
)
def test_broken_mime_passes_through(data: bytes, reason: str) -> None:
    for action in IcsAction:
        result = transform_calendar(data, action)
        assert result.data == data
        assert result.report.skipped is not None
        assert reason in result.report.skipped
        assert reason in result.report.describe()


def test_report_describes_removed_parts() -> None:
    data = (CORPUS / "nodemailer-calcom-cancel.eml").read_bytes()
    line = transform_calendar(data, IcsAction.STRIP).report.describe()
    assert "removed part 1.3 (text/calendar method=CANCEL" in line
    assert "name='event.ics'" in line


CALENDAR = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"


def _alternative(calendar_fields: bytes, root_parameters: bytes = b"") -> bytes:
    return (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=B" + root_parameters + b"\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--B\r\n" + calendar_fields + b"\r\n\r\n" + CALENDAR + b"--B--\r\n"
    )


@pytest.mark.parametrize(
    "fields",
    [
        # RFC 2045 5.1 allows comments and blanks around the type's tokens.
        b"Content-Type: text/calendar (invitation); method=REQUEST",
        b"Content-Type: text / calendar; method=REQUEST",
        b"Content-Type: text/calendar(x)",
        b"Content-Type: (x) text/calendar; method=REQUEST",
        # Parameters the stdlib raises on: the declared type still counts.
        b"Content-Type: text/calendar; method=REQUEST\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''invite.ics; filename*0=invite.ics",
        b"Content-Type: text/calendar; method=REQUEST; x*" + b"1" * 5000 + b"=y",
    ],
)
def test_calendar_parts_however_their_type_is_written(fields: bytes) -> None:
    for action in IcsAction:
        result = transform_calendar(_alternative(fields), action)
        assert [p.change for p in result.report.parts] == (
            [PartChange.REMOVED] if action is IcsAction.STRIP else [PartChange.MOVED]
        )
    assert CALENDAR not in transform_calendar(_alternative(fields), IcsAction.STRIP).data


def test_signed_with_a_comment_is_left_alone() -> None:
    signed = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed (signed); protocol="application/pkcs7-signature"; '
        b"micalg=sha-256; boundary=S\r\n\r\n"
        b"--S\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n" + CALENDAR + b"--S\r\n"
        b"Content-Type: application/pkcs7-signature\r\n\r\nSIG\r\n--S--\r\n"
    )
    result = transform_calendar(signed, IcsAction.STRIP)
    assert result.data == signed
    assert not result.report.changed


def test_a_multipart_with_parameters_the_stdlib_cannot_read_is_reported() -> None:
    data = _alternative(b"Content-Type: text/calendar", b"; x*" + b"1" * 5000 + b"=y")
    result = transform_calendar(data, IcsAction.STRIP)
    assert result.data == data
    assert result.report.skipped is not None
    assert "multipart/alternative without a boundary" in result.report.skipped


def test_nested_new_multiparts_get_different_boundaries() -> None:
    # ATTACH wraps the message and an attached message each in a new multipart/mixed; both
    # boundaries once came from the same message digest and attempt, one nested in the other.
    inner = (
        b"From: x@y.example\r\nContent-Type: multipart/alternative; boundary=IA\r\n\r\n"
        b"--IA\r\nContent-Type: text/plain\r\n\r\ninner\r\n"
        b"--IA\r\nContent-Type: text/calendar\r\n\r\nINNER-CAL\r\n--IA--\r\n"
    )
    data = (
        b"From: a@b.example\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/related; boundary=R\r\n\r\n"
        b"--R\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n"
        b"--A\r\nContent-Type: text/plain\r\n\r\nouter\r\n"
        b"--A\r\nContent-Type: text/calendar\r\n\r\nOUTER-CAL\r\n--A--\r\n"
        b"\r\n--R\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--R--\r\n"
    )
    result = transform_calendar(data, IcsAction.ATTACH, descend_messages=True)
    assert len(result.report.parts) == 2
    boundaries = re.findall(rb'boundary="(=_mxrelay_[^"]+)"', result.data)
    assert len(boundaries) == len(set(boundaries)) == 2
    root = parse_message(result.data, descend_messages=True)  # raised MimeStructureError
    assert root.content_type == "multipart/mixed"  # around the related, with the attachment
    assert not defects(parse(result.data))


# --------------------------------------------------------------------------------------------
# Properties over generated trees
# --------------------------------------------------------------------------------------------

newlines = st.sampled_from([b"\r\n", b"\n"])


@given(trees, newlines)
def test_strip_properties(tree: Leaf | Multi, newline: bytes) -> None:
    data = render(tree, newline)
    result = transform_calendar(data, IcsAction.STRIP)
    out = parse(result.data)
    assert not defects(out)
    after = leaves(out)
    assert not any(leaf.calendar for leaf in after)
    generated = tree_leaves(tree)
    kept = [leaf for leaf in generated if not leaf.calendar]
    if kept:
        assert [leaf for leaf in leaves(parse(data)) if not leaf.calendar] == after
        for leaf in kept:  # byte for byte, line ends included
            assert leaf.body.replace(b"\n", newline) in result.data
    else:
        assert result.report.body_replaced
    if not any(leaf.calendar for leaf in generated):
        assert result.data == data
        assert not result.report.changed
    assert transform_calendar(result.data, IcsAction.STRIP).data == result.data


@given(trees, newlines)
def test_attach_properties(tree: Leaf | Multi, newline: bytes) -> None:
    data = render(tree, newline)
    result = transform_calendar(data, IcsAction.ATTACH)
    out = parse(result.data)
    assert not defects(out)
    for leaf in leaves(out):
        if leaf.calendar:
            assert leaf.content_type == "application/ics"
            assert leaf.disposition == "attachment"
            assert not leaf.in_alternative
    assert _calendar_payloads(result.data) == _calendar_payloads(data)
    non_calendar = [leaf for leaf in leaves(parse(data)) if not leaf.calendar]
    assert [leaf for leaf in leaves(out) if not leaf.calendar] == non_calendar
    if not any(leaf.calendar for leaf in tree_leaves(tree)):
        assert result.data == data
    assert transform_calendar(result.data, IcsAction.ATTACH).data == result.data
