"""The DATA phase as a small, pure state machine: find the end, judge line endings, cap the size.

Fed raw bytes as they arrive; reports when the message is complete and what is wrong with it. The
terminator is only ever `<CRLF>.<CRLF>`; a bare LF or bare CR anywhere in the data makes the
message unacceptable (the 2023 SMTP smuggling attacks rely on servers that accept `<LF>.<LF>` or
`<LF>.<CRLF>` as an end; Postfix's `smtpd_forbid_bare_newline`). When the data also contains such
a look-alike end right at the end of what was received, the client is probably an LF-only sender
waiting for a reply that a CRLF terminator would never produce, so the reader stops there too
(`ENDED_BARE`), and the engine answers and closes the connection.

Line-oriented parsing in Python costs a call per line; this module works on whole chunks with
`bytes.find`/`count`/`replace`, which run in C, so a 25 MB message costs a few passes over memory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

TERMINATOR = b"\r\n.\r\n"
_BARE_ENDINGS = (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n")


class DataProblem(enum.Enum):
    NONE = "none"
    TOO_BIG = "too_big"
    BARE_NEWLINE = "bare_newline"
    NO_MEMORY = "no_memory"
    """The engine could not hold more (`discard()`): the data was read to its end and dropped."""


class DataState(enum.Enum):
    READING = "reading"
    COMPLETE = "complete"
    ENDED_BARE = "ended_bare"


@dataclass(frozen=True, slots=True)
class DataResult:
    """The message (dot-unstuffing undone, CRLF line ends) or the reason it cannot be accepted.

    `leftover` holds bytes received after the terminator: pipelined commands that follow DATA.
    """

    state: DataState
    problem: DataProblem
    message: bytes
    size: int
    leftover: bytes


class DataReader:
    """Accumulates one message's DATA. Call `feed()` with each chunk until it returns a result."""

    __slots__ = ("_buffer", "_discarding", "_dropped", "_limit", "_scan_from")

    def __init__(self, size_limit: int) -> None:
        # A virtual CRLF in front lets a message that is only ".\r\n" end like any other.
        self._buffer = bytearray(b"\r\n")
        self._limit = size_limit
        self._scan_from = 0
        self._dropped = 0  # bytes discarded after the size limit was passed (or discard())
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes of message data held so far."""
        return len(self._buffer)

    def discard(self) -> None:
        """Hold nothing more of this message: read on to its end, then report NO_MEMORY."""
        self._discarding = True

    def feed(self, chunk: bytes | bytearray) -> DataResult | None:
        buffer = self._buffer
        buffer += chunk
        end = buffer.find(TERMINATOR, self._scan_from)
        if end < 0:
            self._scan_from = max(0, len(buffer) - len(TERMINATOR) + 1)
            if (self._discarding or self._too_big(len(buffer))) and len(buffer) > 64:
                # Keep only the tail: enough to see the terminator, not the message.
                keep = 8
                self._dropped += len(buffer) - keep
                del buffer[:-keep]
                self._scan_from = 0
            elif self._looks_bare_ended(buffer):
                return self._finish(DataState.ENDED_BARE, len(buffer), b"")
            return None
        leftover = bytes(buffer[end + len(TERMINATOR) :])
        return self._finish(DataState.COMPLETE, end + 2, leftover)

    def _too_big(self, buffered: int) -> bool:
        return self._dropped > 0 or buffered - 2 > self._limit

    def _looks_bare_ended(self, buffer: bytearray) -> bool:
        tail = bytes(buffer[-5:])
        return any(tail.endswith(ending) for ending in _BARE_ENDINGS)

    def _finish(self, state: DataState, end: int, leftover: bytes) -> DataResult:
        size = self._dropped + end - 2
        if size > self._limit:
            return DataResult(state, DataProblem.TOO_BIG, b"", size, leftover)
        if self._discarding:
            return DataResult(state, DataProblem.NO_MEMORY, b"", size, leftover)
        # One copy out of the buffer (a slice of a bytearray would be a second), then the buffer
        # goes: a message is held about twice at this moment, never three times.
        with memoryview(self._buffer) as view:
            body = bytes(view[2:end])
        self._buffer = bytearray()
        if has_bare_newline(body) or state is DataState.ENDED_BARE:
            return DataResult(state, DataProblem.BARE_NEWLINE, b"", size, leftover)
        return DataResult(state, DataProblem.NONE, unstuff(body), size, leftover)


def has_bare_newline(data: bytes) -> bool:
    """True when `data` has an LF not preceded by CR, or a CR not followed by LF."""
    crlf = data.count(b"\r\n")
    return data.count(b"\n") != crlf or data.count(b"\r") != crlf


def unstuff(body: bytes) -> bytes:
    """Undo dot-stuffing (RFC 5321 4.5.2): a line starting with '.' lost its first dot."""
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")
