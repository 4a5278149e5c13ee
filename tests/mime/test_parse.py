"""The byte-exact scanner: spans of fields, parts and delimiters, file names, structure errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.parse import (
    HEADER_LIMIT,
    PARAMETER_FIELD_LIMIT,
    PARAMETER_LIMIT,
    FieldFinder,
    MimeLimits,
    MimeStructureError,
    find,
    header_region,
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


def test_header_and_field_bounds() -> None:
    multipart = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
    big_header = multipart + b"--x\r\n" + b"X-A: a\r\n" * (HEADER_LIMIT // 8 + 1) + b"\r\n--x--\r\n"
    with pytest.raises(MimeStructureError, match="header block over"):
        parse_message(big_header)
    many = multipart + (b"--x\r\nA: 1\r\nB: 2\r\n\r\n") * 30 + b"--x--\r\n"
    assert len(parse_message(many).children) == 30
    with pytest.raises(MimeStructureError, match="more than 50 header fields"):
        parse_message(many, limits=MimeLimits(max_fields=50))


def test_parameters_beyond_the_bounds_are_not_parsed() -> None:
    fine = b'Content-Type: text/plain; name="a.ics"; x="' + b";" * 10 + b'"\r\n\r\nx'
    assert parse_message(fine).filenames == ("a.ics",)
    many = b'Content-Type: text/plain; name="a.ics"; x="' + b";" * PARAMETER_LIMIT + b'"\r\n\r\nx'
    assert parse_message(many).filenames == ()
    assert parse_message(many).content_type == "text/plain"
    long_name = b"Content-Type: text/calendar; name=" + b"a" * PARAMETER_FIELD_LIMIT + b"\r\n\r\nx"
    entity = parse_message(long_name)
    assert (entity.content_type, entity.filenames) == ("text/calendar", ())
    long_boundary = b"Content-Type: multipart/mixed; boundary=x; a=" + b"a" * PARAMETER_FIELD_LIMIT
    with pytest.raises(MimeStructureError, match="without a boundary"):
        parse_message(long_boundary + b"\r\n\r\n--x\r\n\r\n--x--\r\n")


def test_rfc_2231_charsets_are_text_charsets() -> None:
    data = b"Content-Disposition: attachment; filename*=punycode''99999.ics\r\n\r\nx"
    assert parse_message(data).filenames == ("99999.ics",)
    data = b"Content-Disposition: attachment; filename*=iso-8859-1''f%FCr.ics\r\n\r\nx"
    assert parse_message(data).filenames == ("für.ics",)


def test_scan_headers_stops_at_the_limit() -> None:
    data = b"A: 1\r\n" * 10 + b"B: 2\r\n"
    block = scan_headers(data, limit=40)
    assert not block.complete
    assert [f.name for f in block.fields] == ["A"] * 6  # the seventh is cut by the limit
    assert scan_headers(data + b"\r\nbody", limit=1000).complete
    assert scan_headers(data, limit=len(data)).complete  # headers only, all within the limit


def test_header_region_and_field_finder() -> None:
    data = (
        b"Subject: a\r\nX-To: no\r\nto : b@example.net,\r\n c@example.net\r\nTO: d\r\n\r\nTo: body"
    )
    end, complete = header_region(data)
    assert (data[end : end + 2], complete) == (b"\r\n", True)
    finder = FieldFinder(["to", "subject"])
    assert finder.values(data, end, per_name=5) == {
        "subject": [b" a"],
        "to": [b" b@example.net,\r\n c@example.net", b" d"],
    }
    assert finder.values(data, end) == {
        "subject": [b" a"],
        "to": [b" b@example.net,\r\n c@example.net"],
    }
    assert header_region(b"\r\nbody") == (0, True)
    assert header_region(b"A: b" * 100, limit=40) == (40, False)


@pytest.mark.parametrize(
    "parameters",
    [
        b"; filename*=utf-8''invite.ics; filename*0=invite.ics",  # the stdlib: TypeError
        b"; x*=a; x*0=b",
        b"; x*" + b"1" * 5000 + b"=y",  # past Python's 4300-digit int limit: ValueError
    ],
)
def test_parameters_the_stdlib_cannot_read_leave_the_declared_type(parameters: bytes) -> None:
    calendar = parse_message(
        b"Content-Type: text/calendar; method=REQUEST" + parameters + b"\r\n\r\nx"
    )
    assert (calendar.content_type, calendar.method, calendar.filenames) == (
        "text/calendar",
        None,
        (),
    )
    disposition = parse_message(b"Content-Disposition: attachment" + parameters + b"\r\n\r\nx")
    assert (disposition.content_type, disposition.disposition) == ("text/plain", "attachment")
    # Only the field the stdlib cannot read loses its parameters.
    both = parse_message(
        b"Content-Type: multipart/mixed; boundary=b\r\n"
        b"Content-Disposition: inline" + parameters + b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"
    )
    assert (both.content_type, both.boundary, both.disposition) == (
        "multipart/mixed",
        b"b",
        "inline",
    )
    # A multipart whose parameters cannot be read has no boundary: broken MIME, as past the bounds.
    with pytest.raises(MimeStructureError, match="multipart/mixed without a boundary"):
        parse_message(
            b"Content-Type: multipart/mixed; boundary=b"
            + parameters
            + b"\r\n\r\n--b\r\n\r\nx\r\n--b--"
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/calendar (invitation); method=REQUEST", "text/calendar"),
        ("text / calendar; method=REQUEST", "text/calendar"),
        ("text/calendar(x)", "text/calendar"),
        ("(x) text/calendar; method=REQUEST", "text/calendar"),
        ("text/(a (nested \\) one) b)calendar", "text/calendar"),
        ("TEXT/Calendar (a;b); method=REQUEST", "text/calendar"),
        (
            'multipart/signed (signed); protocol="application/pkcs7-signature"; boundary=s',
            "multipart/signed",
        ),
        ("text/calendar (unclosed; method=REQUEST", "text/calendar"),
        ("(only a comment)", "text/plain"),
        ("", "text/plain"),
        ("text", "text/plain"),
    ],
)
def test_comments_and_blanks_around_the_type(value: str, expected: str) -> None:
    entity = parse_message(
        b"Content-Type: " + value.encode() + b"\r\n\r\n--s\r\n\r\nx\r\n--s--\r\n"
    )
    assert entity.content_type == expected


def test_comments_around_the_disposition() -> None:
    data = b"Content-Disposition: (as a file) Attachment (x); filename=a.ics\r\n\r\nx"
    assert parse_message(data).disposition == "attachment"
    assert parse_message(data).filenames == ("a.ics",)


@given(st.text(alphabet=st.sampled_from("(()\\;a/ "), max_size=60))
def test_declared_type_of_any_text(value: str) -> None:
    entity = parse_message(b"Content-Type: " + value.encode() + b"\r\n\r\nx")
    assert entity.content_type.count("/") == 1
    assert entity.content_type == entity.content_type.lower()
