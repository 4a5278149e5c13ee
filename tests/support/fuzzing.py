"""Hypothesis strategies for fuzzing with messages: raw and damaged bytes, and hostile messages.

`raw_messages`: random bytes, MIME tokens strung together, and corpus messages with bytes cut,
inserted or overwritten. `hostile_messages`: header fields and MIME bodies built to hurt parsers
(encoded-word runs, nested comments and multiparts, odd charsets and transfer encodings, long
runs of one character, floods of fields and boundaries), up to a few hundred kilobytes.
`MXRELAY_FUZZ_EXAMPLES` sets the number of examples (the suite runs few; `make fuzz` many).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support.hostile import WORDS, nested_comments, nested_multiparts
from tests.support.mime_trees import corpus_files, render, trees

EXAMPLES = int(os.environ.get("MXRELAY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LARGE_EXAMPLES = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)
"""For tests drawing whole messages: Hypothesis warns when it prints a failing example of more
than 30 kB, and with warnings as errors that warning, not the failure, was all a long run
reported."""

SEEDS = [path.read_bytes() for path in corpus_files()]
MIME_TOKENS = [
    b"\r\n",
    b"\n",
    b"--",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"Content-Type: text/calendar\r\n",
    b"Content-Disposition: attachment; filename=a.ics\r\n",
    b"--x\r\n",
    b"--x--\r\n",
    b"\xff\x00",
    b" ",
]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A corpus message with bytes cut, inserted or overwritten, or truncated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["cut", "insert", "token", "truncate"]))
        if how == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "token":
            data[at:at] = draw(st.sampled_from(MIME_TOKENS))
        else:
            del data[at:]
    return bytes(data)


raw_messages = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.sampled_from(MIME_TOKENS) | st.binary(max_size=8), max_size=40).map(b"".join),
    damaged(),
)

CHARSETS = [b"utf-8", b"iso-8859-1", b"punycode", b"utf-7", b"unicode_escape", b"idna", b"hex"]
CHARSETS += [b"zlib", b"x-unknown", b'"utf-8"', b"utf-16", b"iso-2022-jp", b""]
FIELD_NAMES = [b"From", b"To", b"Cc", b"Bcc", b"Subject", b"Message-ID", b"Sender", b"Reply-To"]
FIELD_NAMES += [b"Content-Type", b"Content-Disposition", b"Content-Transfer-Encoding", b"X-A"]
RUNS = [b"a", b"<", b"(", b")", b'"', b"\\", b"=?", b";", b",", b"@", b" ", b"-", b"\xc3", b"\x00"]


def repeated(piece: st.SearchStrategy[bytes], most: int) -> st.SearchStrategy[bytes]:
    return st.tuples(piece, st.integers(1, most)).map(lambda t: t[0] * t[1])


hostile_values = st.one_of(
    st.binary(max_size=64),
    st.integers(1, 5000).map(lambda n: WORDS * n),
    st.integers(1, 3000).map(nested_comments),
    repeated(st.sampled_from(RUNS), 100_000),
    st.sampled_from(CHARSETS).map(lambda c: b"text/plain; charset=" + c),
    st.sampled_from([b"text/html", b"message/rfc822", b"multipart/mixed; boundary=x"]),
    st.sampled_from([b"base64", b"quoted-printable", b"8bit", b"x-unknown", b"BASE64 "]),
    st.integers(1, 3000).map(lambda n: b'attachment; filename="' + WORDS * n + b'"'),
    st.integers(1, 5000).map(lambda n: b'text/plain; a="' + b";" * n + b'"'),
    st.integers(1, 2000).map(lambda n: b"a@example.net, " * n),
)
hostile_fields = st.tuples(st.sampled_from(FIELD_NAMES) | st.binary(max_size=12), hostile_values)

hostile_bodies = st.one_of(
    st.binary(max_size=512),
    raw_messages,
    st.tuples(trees, st.sampled_from([b"\r\n", b"\n"])).map(lambda t: render(*t)),
    st.integers(1, 2000).map(nested_multiparts),
    repeated(st.sampled_from([b"--x\r\n\r\n", b"a:\r\n", b"99", b"<", b"--x", b"\r\n"]), 60_000),
)


@st.composite
def hostile_messages(draw: st.DrawFn) -> bytes:
    """Hostile header fields, then a blank line (usually), then a hostile body."""
    fields = draw(st.lists(hostile_fields, max_size=8))
    head = b"".join(name + b": " + value + b"\r\n" for name, value in fields)
    flood = draw(st.sampled_from([b"", b"", b"", b"X-F: f\r\n" * 20_000]))
    separator = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b""]))
    return head + flood + separator + draw(hostile_bodies)


messages = st.one_of(raw_messages, hostile_messages())
"""Every kind above."""
