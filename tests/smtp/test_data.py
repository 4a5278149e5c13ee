"""The DATA reader is a pure state machine: feed it bytes in any chunking, get the same result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mxrelay.smtp.data import DataProblem, DataReader, DataState, has_bare_newline, unstuff


def stuff(body: bytes) -> bytes:
    """Dot-stuffing as a client applies it to send `body` (CRLF line ends) as DATA."""
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..")


def feed_all(chunks: list[bytes], limit: int = 1 << 20) -> tuple[object, ...]:
    """Feed chunks until complete; what follows the end is the leftover plus unread chunks."""
    reader = DataReader(limit)
    for index, chunk in enumerate(chunks):
        result = reader.feed(chunk)
        if result is not None:
            rest = result.leftover + b"".join(chunks[index + 1 :])
            return (result.state, result.problem, result.message, rest)
    return ("incomplete",)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


lines = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=20
)


@given(lines, st.lists(st.integers(min_value=0), max_size=8))
def test_chunking_never_changes_the_result(body_lines: list[bytes], cuts: list[int]) -> None:
    body = b"".join(line + b"\r\n" for line in body_lines)
    wire = stuff(body) + b".\r\nNEXT\r\n"
    expected = feed_all([wire])
    assert feed_all(split(wire, cuts)) == expected
    assert expected == (DataState.COMPLETE, DataProblem.NONE, body, b"NEXT\r\n")


@given(lines)
def test_stuff_and_unstuff_are_inverse(body_lines: list[bytes]) -> None:
    body = b"".join(line + b"\r\n" for line in body_lines)
    assert unstuff(stuff(body)) == body


def test_size_limit_keeps_reading_to_the_end_without_buffering() -> None:
    reader = DataReader(1000)
    assert reader.feed(b"x" * 600 + b"\r\n") is None
    for _ in range(100):
        assert reader.feed(b"y" * 10_000 + b"\r\n") is None
        assert len(reader._buffer) < 20_000
    result = reader.feed(b".\r\nQUIT\r\n")
    assert result is not None
    assert result.problem is DataProblem.TOO_BIG
    assert result.message == b""
    assert result.leftover == b"QUIT\r\n"
    assert result.size > 1_000_000


def test_terminator_split_across_chunks() -> None:
    reader = DataReader(1000)
    assert reader.feed(b"hello\r") is None
    assert reader.feed(b"\n.") is None
    result = reader.feed(b"\r\n")
    assert result is not None
    assert result.message == b"hello\r\n"


def test_bare_newline_detection() -> None:
    assert not has_bare_newline(b"a\r\nb\r\n")
    assert has_bare_newline(b"a\nb\r\n")
    assert has_bare_newline(b"a\rb\r\n")
    assert has_bare_newline(b"a\r\r\n")
