"""The byte-exact scanner: spans of fields, parts and delimiters, file names, structure errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.parse import (
    MimeLimits,
    MimeStructureError,
    find,
    parse_message,
    scan_headers,
)

MESSAGE = (
    b"Subject: folded\r\n subject\r\n"
    b'Content-Type: multipart/mixed;\r\n\tboundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain\r\n\r\nhello\r\n"
    b"--outer  \r\n"
    b"Content-Type: application/octet-stream;\r\n name*0*=utf-8''Termin%20f%C3%BCr;\r\n name*1=\" J.ics\"\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n\xff\x00binary\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


def test_spans_cover_the_exact_bytes() -> None:
    root = parse_message(MESSAGE)
    assert root.content_type == "multipart/mixed"
    assert root.boundary == b"outer"
    assert root.newline == b"\r\n"
    assert [MESSAGE[f.start : f.end] for f in root.fields] == [
        b"Subject: folded\r\n subject\r\n",
        b'Content-Type: multipart/mixed;\r\n\tboundary="outer"\r\n',
    ]
    first, second = root.children
    assert MESSAGE[first.start : first.end] == b"Content-Type: text/plain\r\n\r\nhello"
    assert MESSAGE[first.body_start : first.end] == b"hello"
    assert MESSAGE[second.body_start : second.end] == b"\xff\x00binary"
    assert second.filenames == ("Termin für J.ics",)
    assert [MESSAGE[d.start : d.end] for d in root.delimiters] == [
        b"--outer\r\n",
        b"--outer  \r\n",
    ]
    assert root.close is not None
    assert MESSAGE[root.close.start : root.close.end] == b"--outer--\r\n"


def test_lf_message() -> None:
    data = MESSAGE.replace(b"\r\n", b"\n")
    root = parse_message(data)
    assert root.newline == b"\n"
    assert data[root.children[0].body_start : root.children[0].end] == b"hello"


def test_encoded_word_file_name_and_disposition() -> None:
    data = (
        b'Content-Type: application/octet-stream; name="=?utf-8?B?VGVybWluLmljcw==?="\r\n'
        b"Content-Disposition: ATTACHMENT; filename=report.pdf\r\n\r\nx"
    )
    part = parse_message(data)
    assert part.disposition == "attachment"
    assert part.filenames == ("report.pdf", "Termin.ics")


def test_delimiter_needs_its_own_line() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\n\r\ntext --b inside a line, and --bb is another boundary\r\n--bb\r\n"
        b"--b--\r\n"
    )
    root = parse_message(data)
    assert len(root.children) == 1


def test_digest_children_default_to_messages() -> None:
    data = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\nbody\r\n--d--"
    assert parse_message(data).children[0].content_type == "message/rfc822"


def test_embedded_message_only_when_asked() -> None:
    data = (
        b"Content-Type: message/rfc822\r\n\r\n"
        b"Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n"
    )
    assert parse_message(data).embedded is None
    inner = parse_message(data, descend_messages=True).embedded
    assert inner is not None
    assert inner.content_type == "text/calendar"


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\n--x--\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\nnothing\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\ntruncated",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n",
    ],
)
def test_structure_errors(data: bytes) -> None:
    with pytest.raises(MimeStructureError):
        parse_message(data)


def test_limits() -> None:
    data = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\n\r\n" * 5 + b"--x--"
    assert len(parse_message(data).children) == 5
    with pytest.raises(MimeStructureError, match="more than 4 parts"):
        parse_message(data, limits=MimeLimits(max_parts=4))


def test_scan_headers_of_anything() -> None:
    block = scan_headers(b"no colon here\r\nX: y\r\n\r\nbody")
    assert [f.name for f in block.fields] == ["", "X"]
    assert block.body_start == len(b"no colon here\r\nX: y\r\n\r\n")
    assert scan_headers(b"").fields == ()


_SMALL = st.sampled_from([b"-", b"a", b"b"])


@given(
    st.lists(_SMALL, max_size=200).map(b"".join),
    st.lists(_SMALL, min_size=1, max_size=5).map(b"".join),
    st.integers(0, 210),
    st.integers(0, 210) | st.none(),
    st.integers(1, 8),
)
def test_windowed_find_agrees_with_bytes_find(
    data: bytes, needle: bytes, start: int, end: int | None, window: int
) -> None:
    expected = data.find(needle, start) if end is None else data.find(needle, start, end)
    assert find(data, needle, start, end, window=window) == expected
