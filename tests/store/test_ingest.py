"""What is computed at accept time (pure): summaries for listing and search, hashes, variants."""

from __future__ import annotations

import base64
import hashlib
import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime import addresses
from mxrelay.store import ingest
from mxrelay.store.ingest import (
    BODY_DECODE_LIMIT,
    BODY_ENCODING,
    SEARCH_TEXT_LIMIT,
    SUMMARY_ADDRESS_CHARACTERS,
    SUMMARY_ADDRESS_LIMIT,
    SUMMARY_FIELD_LIMIT,
    SUMMARY_PARSER_CHARACTERS,
    address_tokens,
    collapse_spaces,
    compress_body,
    decompress,
    summarise,
)
from tests.store.helpers import record, transaction
from tests.support.stdlib_parser import RecordingParser


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
def test_bodies_are_stored_compressed_and_read_back_whole(size: int) -> None:
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
    data = (line * (size // len(line) + 1))[:size]
    packed = compress_body(data)
    assert decompress(BODY_ENCODING, packed) == data
    if size >= 512:
        assert len(packed) < size // 4  # a repeated line: zlib's fastest level still finds it


_OLD_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")


@given(st.text(alphabet=st.sampled_from('ab@ <>,;:"()[]\t.'), max_size=40))
def test_address_tokens_find_what_the_old_pattern_found(value: str) -> None:
    # The pattern took seconds on a long run without delimiters; the tokens take linear time.
    assert address_tokens(value) == _OLD_ADDRESS.findall(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # A charset that is no text charset is read as UTF-8 (punycode is quadratic).
        (b"Content-Type: text/plain; charset=punycode\r\n\r\n99999\r\n", "99999"),
        (b"Content-Type: text/plain; charset=utf-7\r\n\r\n+AGE-\r\n", "+AGE-"),
        # Broken MIME has no text here (the message itself is kept as it is).
        (b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nunclosed\r\n", ""),
        # Unknown transfer encodings are shown as they are.
        (b"Content-Transfer-Encoding: x-unknown\r\n\r\nas is\r\n", "as is"),
    ],
)
def test_summary_text_of_odd_messages(raw: bytes, expected: str) -> None:
    assert summarise(raw).body_text == expected


def test_summary_fields_are_bounded() -> None:
    words = b"=?utf-8?q?a?= " * 5000
    to = b", ".join(b"user%d@example.org" % i for i in range(SUMMARY_ADDRESS_LIMIT + 10))
    summary = summarise(
        b"Subject: "
        + words
        + b"\r\nFrom: "
        + words
        + b"<a@example.net>\r\nTo: "
        + to
        + b"\r\n\r\nx"
    )
    assert summary.subject.startswith("a" * 1000)  # decoded in part
    assert len(summary.subject) <= SUMMARY_FIELD_LIMIT
    assert (
        summarise(b"Subject: " + b"x" * 10_000 + b"\r\n\r\n").subject == "x" * SUMMARY_FIELD_LIMIT
    )
    assert summary.header_from == ""  # beyond the address bounds: not read
    listed = summary.header_to.split(", ")
    assert listed[0] == "user0@example.org"
    assert len(listed) <= SUMMARY_ADDRESS_LIMIT
    assert len(summary.header_to) <= SUMMARY_ADDRESS_CHARACTERS
    assert summarise(b"To: " + b"a" * 300_000 + b"@b\r\n\r\nx").header_to == ""  # read in part


def test_the_body_is_read_up_to_its_limit() -> None:
    tags = b"<i>" * (BODY_DECODE_LIMIT // 3 + 1)
    html = b"Content-Type: text/html\r\n\r\n"
    assert summarise(html + tags[:-300] + b"seen").body_text == "seen"
    assert "unseen" not in summarise(html + tags + b"unseen").body_text
    words = b"word " * (SEARCH_TEXT_LIMIT // 5 + 1000)
    summary = summarise(b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(words))
    assert summary.body_text == words.decode()[:SEARCH_TEXT_LIMIT]


def test_parameters_the_stdlib_cannot_read_do_not_refuse_the_message() -> None:
    # `filename*=` with `filename*0=` made the stdlib raise TypeError; at accept time that was a
    # 451 for ever.
    data = (
        b"From: app@example.com\r\nTo: a@example.net\r\nSubject: booking\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--B\r\nContent-Type: text/calendar; method=REQUEST\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''invite.ics; filename*0=invite.ics\r\n"
        b"\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--B--\r\n"
    )
    summary = summarise(data)
    assert (summary.subject, summary.body_text, summary.attachments) == ("booking", "hello", 1)
    assert record(transaction(data=data)).summary == summary


def test_the_address_lists_hand_the_stdlib_parser_a_bounded_amount(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Entries of comments cost the parser ~20 us a character: 16 of 2 KiB in each of To, Cc, Bcc
    # and Reply-To took 2.9 s.
    parser = RecordingParser()
    monkeypatch.setattr(addresses, "_PARSER", parser)
    monkeypatch.setattr(ingest, "SUMMARY_PARSER_CHARACTERS", 4096)  # the real bound takes 0.3 s
    assert SUMMARY_PARSER_CHARACTERS > 4096
    value = ",\r\n ".join(["(a)" * 680] * 16 + ["Dr. Alice <alice@example.net>"]).encode()
    head = b"".join(name + b": " + value + b"\r\n" for name in (b"To", b"Cc", b"Bcc", b"Reply-To"))
    summary = summarise(b"From: app@example.com\r\n" + head + b"\r\nbody\r\n")
    assert 0 < sum(parser.handed) <= 4096
    # Past the budget an entry keeps its address, not its name.
    assert summary.addresses.to == (("", "alice@example.net"),)
    assert summary.addresses.reply_to == (("", "alice@example.net"),)
