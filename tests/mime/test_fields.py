"""Header fields read as Go's net/textproto reads them: canonical names, unfolded values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.fields import FIELD_LIMIT, canonical_key, read_fields


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("message-id", "Message-Id"),
        ("MIME-Version", "Mime-Version"),
        ("DKIM-Signature", "Dkim-Signature"),
        ("x-tags", "X-Tags"),
        ("list-unsubscribe-post", "List-Unsubscribe-Post"),
        ("cOnTeNt-TyPe", "Content-Type"),
        ("x--double", "X--Double"),
        ("Subject ", "Subject "),  # a space before the colon: kept as written, as Go keeps it
        ("X_Under", "X_under"),
        ("Bad(name)", "Bad(name)"),  # not a token: unchanged
        ("Ünïcode", "Ünïcode"),
    ],
)
def test_canonical_names(name: str, canonical: str) -> None:
    assert canonical_key(name) == canonical


def test_values_are_unfolded_and_trimmed_as_go_does() -> None:
    data = (
        b"Subject:   Hello  \r\n\t  wide\r\n   world \r\n"
        b"To: a@example.net\r\nto: b@example.net\r\n"
        b"X-Empty:\r\n"
        b"X-Blank-Continuation: v\r\n \r\n"
        b"no colon here\r\n"
        b": no name\r\n"
        b"\r\nbody: not a header\r\n"
    )
    fields = read_fields(data)
    assert fields.get("subject") == "Hello wide world"
    assert fields.values("To") == ["a@example.net", "b@example.net"]
    assert fields.get("X-Empty") == ""
    assert fields.get("X-Blank-Continuation") == "v "
    assert fields.as_map() == {
        "Subject": ["Hello wide world"],
        "To": ["a@example.net", "b@example.net"],
        "X-Blank-Continuation": ["v "],
        "X-Empty": [""],
    }
    assert data[fields.body_start :] == b"body: not a header\r\n"


def test_bare_lf_invalid_utf8_and_a_part_without_headers() -> None:
    fields = read_fields(b"Subject: caf\xe9\nX-A: 1\n\nbody")
    assert fields.get("Subject") == "caf\ufffd"  # as Go's JSON encoder shows invalid UTF-8
    assert fields.body_start == len(b"Subject: caf\xe9\nX-A: 1\n\n")
    headless = read_fields(b"Just text\r\nmore\r\n")
    assert (headless.items, headless.body_start) == ((), 0)


def test_field_count_is_bounded() -> None:
    data = b"".join(b"X-N: %d\r\n" % n for n in range(FIELD_LIMIT + 50)) + b"\r\n"
    assert len(read_fields(data).items) == FIELD_LIMIT


@given(st.binary(max_size=1024))
def test_any_bytes(data: bytes) -> None:
    fields = read_fields(data)
    assert 0 <= fields.body_start <= len(data)
