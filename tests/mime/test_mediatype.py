"""Content-Type and Content-Disposition values, well-formed and not."""

from __future__ import annotations

import pytest

from mxrelay.mime.mediatype import parse_media_type


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Text/HTML; Charset="UTF-8"', ("text/html", {"charset": "UTF-8"})),
        ('multipart/mixed; boundary="a;b"; boundary=c', ("multipart/mixed", {"boundary": "a;b"})),
        (
            "attachment; filename*=UTF-8''%E2%82%AC%20rates.txt",
            ("attachment", {"filename": "€ rates.txt"}),
        ),
        (
            'attachment; filename*0*=iso-8859-1\'\'caf%E9; filename*1=" cr\\"eme.txt"',
            ("attachment", {"filename": 'café cr"eme.txt'}),
        ),
        ("inline; novalue; name=x", ("inline", {"name": "x"})),
        ('image/png; name="unterminated', ("image/png", {"name": "unterminated"})),
        ("", ("", {})),
    ],
)
def test_media_types(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_media_type(value) == expected


def test_bounded() -> None:
    value = "text/plain" + "; a=b" * 10_000
    kind, params = parse_media_type(value)
    assert kind == "text/plain"
    assert len(params) == 1  # duplicates keep the first; only PARAMETER_LIMIT are read


def test_section_numbers_past_the_int_limit() -> None:
    # int() refuses more than 4300 digits; such a section can never be joined anyway.
    value = "application/pdf; name*" + "1" * 5000 + "=x.pdf; name*0=a; name*1=b.pdf"
    assert parse_media_type(value) == ("application/pdf", {"name": "ab.pdf"})
    assert parse_media_type("text/plain; x*" + "0" * 5000 + "*=y") == ("text/plain", {})
