"""What is computed at accept time (pure): summaries for listing and search, hashes, variants."""

from __future__ import annotations

import hashlib
import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.store.record import (
    COMPRESSION_LEVEL,
    collapse_spaces,
    compress_body,
    decompress,
    header_fields,
    summarise,
)
from tests.store.helpers import record, transaction


@pytest.mark.parametrize(
    ("raw", "subject", "text"),
    [
        (b"Subject: plain\r\n\r\nHello  world\r\n", "plain", "Hello world"),
        (
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n",
            "Grüße",
            "Grüße aus Köln",
        ),
        (
            b"Subject: b64\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nR3L832U=\r\n",
            "b64",
            "Grüße",
        ),
        (
            b"Subject: html only\r\nContent-Type: text/html\r\n\r\n<p>Hi <b>there</b></p>\r\n",
            "html only",
            "Hi there",
        ),
        (
            b"Subject: folded\r\n  subject\r\nContent-Type: multipart/alternative; boundary=b\r\n"
            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b--\r\n",
            "folded subject",
            "part one",
        ),
        (b"no header at all", "", ""),
    ],
)
def test_summary(raw: bytes, subject: str, text: str) -> None:
    summary = summarise(raw)
    assert summary.subject == subject
    assert summary.body_text == text


def test_addresses_and_message_id() -> None:
    fields = header_fields(
        b'From: "Doe, Jane" <jane@example.net>\r\nTo: a@example.org,\r\n b@example.org\r\n'
        b"Message-ID: <abc@example.net>\r\n"
    )
    assert fields["to"] == ["a@example.org, b@example.org"]
    summary = summarise(
        b'From: "Doe, Jane" <jane@example.net>\r\nTo: a@example.org,\r\n b@example.org\r\n'
        b"Message-ID: <abc@example.net>\r\n\r\nbody\r\n"
    )
    assert summary.header_from == "jane@example.net"
    assert summary.header_to == "a@example.org, b@example.org"
    assert summary.message_id == "abc@example.net"


@given(st.text(alphabet=st.sampled_from(" a\t\r\n\x0b\x0c\x1c\x85\xa0\u2003\u3000b")))
def test_spaces_collapse_as_the_whitespace_pattern_does(text: str) -> None:
    assert collapse_spaces(text) == re.sub(r"\s+", " ", text).strip()


@given(st.binary(max_size=4096))
def test_summarise_never_raises(data: bytes) -> None:
    summary = summarise(data)
    assert len(summary.snippet) <= 250


@given(st.binary(max_size=4096))
def test_stored_bytes_come_back_exactly(data: bytes) -> None:
    rec = record(transaction(data=data))
    assert decompress(rec.encoding, rec.compressed) == data
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    [(variant, size, digest)] = rec.variant_sizes
    sent = rec.received_header.encode() + data  # what every attempt sends
    assert (variant, size, digest) == (0, len(sent), hashlib.sha256(sent).hexdigest())
    assert rec.received_header.startswith("Received: from app.example.net")
    assert rec.received_header.endswith("\r\n")
    assert zlib.decompress(rec.compressed) == data


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 2048, 40_000, 300_000])
def test_bodies_compress_as_well_with_a_window_sized_to_the_message(size: int) -> None:
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
    data = (line * (size // len(line) + 1))[:size]
    packed = compress_body(data)
    assert zlib.decompress(packed) == data
    assert len(packed) <= len(zlib.compress(data, COMPRESSION_LEVEL)) + 8
