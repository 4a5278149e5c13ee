"""Bounded text decoding: text charsets only, the RFC 2047 decoder, transfer encodings cut short."""

from __future__ import annotations

import base64
import binascii
import codecs
import email.header
import quopri

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.text import (
    FALLBACK_CHARSET,
    TEXT_CHARSETS,
    WORDS_INPUT_LIMIT,
    base64_prefix,
    decode_text,
    decode_transfer,
    decode_words,
    text_codec,
    without_surrogates,
)


@pytest.mark.parametrize(
    ("charset", "codec"),
    [
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        ('"iso-8859-1"', "iso8859-1"),
        ("latin1", "iso8859-1"),
        ("us-ascii", "ascii"),
        ("windows-1252", "cp1252"),
        ("ks_c_5601-1987", "euc_kr"),
        ("ISO-2022-JP", "iso2022_jp"),
        ("Shift_JIS", "shift_jis"),
        ("koi8-r", "koi8-r"),
        # Unknown names, and codecs that are no text charset (quadratic, lone surrogates,
        # bytes-to-bytes), are read as UTF-8.
        ("x-unknown", FALLBACK_CHARSET),
        ("punycode", FALLBACK_CHARSET),
        ("utf-7", FALLBACK_CHARSET),
        ("unicode_escape", FALLBACK_CHARSET),
        ("raw-unicode-escape", FALLBACK_CHARSET),
        ("idna", FALLBACK_CHARSET),
        ("rot13", FALLBACK_CHARSET),
        ("hex", FALLBACK_CHARSET),
        ("base64", FALLBACK_CHARSET),
        ("zlib", FALLBACK_CHARSET),
        ("undefined", FALLBACK_CHARSET),
        ("", FALLBACK_CHARSET),
        (None, FALLBACK_CHARSET),
    ],
)
def test_text_charsets_only(charset: str | None, codec: str) -> None:
    assert text_codec(charset) == codec


def test_every_listed_charset_is_a_python_codec_of_that_name() -> None:
    for name in TEXT_CHARSETS:
        assert codecs.lookup(name).name == name


@given(st.binary(max_size=64), st.sampled_from(sorted(TEXT_CHARSETS)))
def test_decoding_never_raises_nor_leaves_lone_surrogates(data: bytes, charset: str) -> None:
    text = decode_text(data, charset)
    text.encode("utf-8")  # a lone surrogate would raise here (and in the store's drivers)


def test_without_surrogates() -> None:
    assert without_surrogates("J\udcfcrgen") == "J\ufffdrgen"  # a byte surrogateescape kept
    assert without_surrogates("\ud83d\ude00 and \ud800") == "\U0001f600 and \ufffd"
    valid = "Jürgen ✓"
    assert without_surrogates(valid) is valid


@given(st.binary(max_size=64))
def test_without_surrogates_is_always_utf8(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")  # each byte that is not UTF-8: a surrogate
    cleaned = without_surrogates(text)
    cleaned.encode("utf-8")
    escaped = sum(1 for c in text if "\udc80" <= c <= "\udcff")
    assert cleaned.count("\ufffd") == text.count("\ufffd") + escaped
    assert cleaned.replace("\ufffd", "") == "".join(
        c for c in text if not "\udc80" <= c <= "\udcff" and c != "\ufffd"
    )


def test_decode_text_reads_at_most_the_limit() -> None:
    assert decode_text("Grüße".encode(), "utf-8", limit=3) == "Gr\ufffd"
    assert decode_text(b"+AGEAYgBj-", "utf-7") == "+AGEAYgBj-"  # not decoded as UTF-7


@pytest.mark.parametrize(
    ("header", "text"),
    [
        ("plain text", "plain text"),
        ("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?UTF-8?B?S8O2bG4=?=", "Grüße aus Köln"),
        ("=?utf-8?b?S8O2?= =?utf-8?b?bG4=?=", "Köln"),  # blanks between words go
        ("=?utf-8?q?=E2=82?=\r\n =?utf-8?q?=AC?=", "€"),  # a character split across words
        ("=?iso-8859-1?q?caf=E9?= =?utf-8?q?_cr=C3=A8me?=", "café crème"),
        ("=?utf-8*de?q?Hallo?=", "Hallo"),  # RFC 2231 language tag
        ("a =?utf-8?q?b?= c", "a b c"),
        ("=?punycode?q?99999?=", "99999"),  # not a text charset: read as UTF-8
        ("=?utf-8?x?abc?=", "=?utf-8?x?abc?="),  # not an encoding: left as it is
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    ],
)
def test_encoded_words(header: str, text: str) -> None:
    assert decode_words(header) == text


words = st.lists(
    st.tuples(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
        st.sampled_from(["utf-8", "iso-8859-1"]),
        st.sampled_from("bq"),
    ),
    min_size=1,
    max_size=6,
)


@given(words)
def test_encoded_words_decode_as_the_standard_library_does(
    parts: list[tuple[str, str, str]],
) -> None:
    header = email.header.Header()
    for text, charset, _ in parts:
        try:
            text.encode(charset)
        except UnicodeEncodeError:
            charset = "utf-8"
        header.append(text, charset)
    encoded = header.encode(maxlinelen=10_000).strip()
    expected = str(email.header.make_header(email.header.decode_header(encoded)))
    assert decode_words(encoded) == expected


def test_encoded_words_beyond_the_limit_are_left_out() -> None:
    header = "=?utf-8?q?a?= " * (WORDS_INPUT_LIMIT // 7)
    decoded = decode_words(header)
    assert set(decoded) <= {"a", "=", "?", "u", "t", "f", "-", "8", "q", " "}
    assert decoded.startswith("a" * 100)
    assert len(decoded) <= WORDS_INPUT_LIMIT


@given(st.binary(max_size=300), st.integers(0, 400))
def test_base64_prefix_is_the_prefix_of_the_whole(data: bytes, limit: int) -> None:
    encoded = base64.encodebytes(data)
    assert base64_prefix(encoded) == data
    assert base64_prefix(encoded, limit) == data[:limit]
    assert base64_prefix(encoded.replace(b"=", b"")) == data  # padding missing


@given(st.binary(max_size=300), st.integers(0, 400))
def test_transfer_decoding_stops_at_the_limit(data: bytes, limit: int) -> None:
    assert decode_transfer(base64.encodebytes(data), "base64", limit) == data[:limit]
    qp = quopri.encodestring(data)
    assert decode_transfer(qp, " Quoted-Printable ", limit) == binascii.a2b_qp(qp)[:limit]
    assert decode_transfer(data, "8bit", limit) == data[:limit]
    assert decode_transfer(data, "x-uuencode", limit) == data[:limit]  # unknown: as it is


@given(st.binary(max_size=200), st.integers(0, 300))
def test_transfer_decoding_never_raises(data: bytes, limit: int) -> None:
    for encoding in ("base64", "quoted-printable", "7bit", ""):
        assert len(decode_transfer(data, encoding, limit)) <= limit
