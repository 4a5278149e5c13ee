"""The line channel: lines out of the buffer, long lines dropped, input and output bounded,
replies batched, a closed connection dropped when its client does not read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mxrelay.model import Reply
from mxrelay.smtp.channel import (
    INPUT_BUFFER_LIMIT,
    OUTPUT_BUFFER_LIMIT,
    ConnectionClosed,
    LineChannel,
)


class Transport:
    """What the channel uses of an asyncio transport, recorded. Nothing written is ever sent:
    like a socket whose client does not read, it holds it, and pauses the protocol's writing past
    the high-water mark the protocol set."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.flow: list[str] = []
        self.closed = False
        self.aborted = False
        self.high = 0
        self.protocol: asyncio.Protocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 2525) if name == "peername" else default

    def set_write_buffer_limits(self, high: int) -> None:
        self.high = high

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.writes))

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if self.protocol is not None and self.high and self.get_write_buffer_size() > self.high:
            self.protocol.pause_writing()

    def sent(self) -> None:
        """The client read everything."""
        self.writes.clear()
        if self.protocol is not None:
            self.protocol.resume_writing()
            if self.closed:
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.flow.append("pause")

    def resume_reading(self) -> None:
        self.flow.append("resume")

    def close(self) -> None:
        self.closed = True
        if self.protocol is not None and not self.writes:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.closed = self.aborted = True


async def idle(channel: LineChannel) -> None:
    await asyncio.Event().wait()


def open_channel() -> tuple[LineChannel, Transport]:
    channel, transport = LineChannel(idle), Transport()
    transport.protocol = channel
    channel.connection_made(transport)  # type: ignore[arg-type]
    return channel, transport


async def test_buffered_lines_come_out_one_at_a_time_without_waiting() -> None:
    channel, _ = open_channel()
    channel.data_received(b"EHLO a\r\nNOOP\r\nQU")
    assert await channel.read_line(100, 0.0, 0.0) == b"EHLO a\r\n"
    assert await channel.read_line(100, 0.0, 0.0) == b"NOOP\r\n"
    assert bytes(channel.buffer) == b"QU"
    assert channel.peer.host == "192.0.2.7"
    channel.abort()


async def test_a_line_over_the_limit_is_read_to_its_end_and_dropped() -> None:
    channel, _ = open_channel()
    reading = asyncio.create_task(channel.read_line(10, 5.0, 5.0))
    for piece in (b"x" * 8, b"x" * 8, b"x" * 8, b"\r\nNOOP\r\n"):
        await asyncio.sleep(0)
        channel.data_received(piece)
    assert await reading is None
    assert await channel.read_line(10, 5.0, 5.0) == b"NOOP\r\n"
    channel.abort()


async def test_a_line_that_does_not_come_times_out() -> None:
    channel, _ = open_channel()
    with pytest.raises(TimeoutError):
        await channel.read_line(100, 0.05, 5.0)
    channel.abort()


async def test_input_past_the_limit_stops_reading_until_the_session_waits_again() -> None:
    channel, transport = open_channel()
    channel.data_received(b"x" * INPUT_BUFFER_LIMIT)
    assert transport.flow == []
    channel.data_received(b"x")
    channel.data_received(b"x")
    assert transport.flow == ["pause"]
    channel.buffer.clear()
    waiting = asyncio.create_task(channel.wait(5.0, asyncio.get_running_loop().time() + 5))
    await asyncio.sleep(0)
    assert transport.flow == ["pause", "resume"]
    channel.data_received(b"more")
    await waiting
    channel.abort()


async def test_replies_go_out_in_one_write_when_the_session_waits() -> None:
    channel, transport = open_channel()
    channel.send(Reply(250, "1.0", "Ok"))
    channel.send(Reply(250, "1.5", "Ok"))
    assert transport.writes == []
    waiting = asyncio.create_task(channel.wait(5.0, asyncio.get_running_loop().time() + 5))
    await asyncio.sleep(0)
    assert transport.writes == [b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"]
    channel.data_received(b"DATA\r\n")
    await waiting
    channel.abort()


async def test_a_lost_connection_ends_the_wait() -> None:
    channel, _ = open_channel()
    reading = asyncio.create_task(channel.read_line(100, 5.0, 5.0))
    await asyncio.sleep(0)
    channel.connection_lost(None)
    with pytest.raises(ConnectionClosed):
        await reading
    with pytest.raises(ConnectionClosed):
        await channel.wait(5.0, asyncio.get_running_loop().time() + 5)
    channel.abort()


async def test_past_the_output_limit_no_line_is_taken_nor_input_read_until_the_client_reads() -> (
    None
):
    channel, transport = open_channel()
    assert transport.high == OUTPUT_BUFFER_LIMIT
    channel.data_received(b"EHLO x\r\nEHLO x\r\n")
    assert await channel.read_line(100, 5.0, 5.0) == b"EHLO x\r\n"
    channel.send_raw(b"2" * (OUTPUT_BUFFER_LIMIT + 1))  # the replies of many pipelined commands
    reading = asyncio.create_task(channel.read_line(100, 5.0, 5.0))
    await asyncio.sleep(0.01)
    assert not reading.done()  # a line is buffered, but its reply would pile up
    assert transport.get_write_buffer_size() == OUTPUT_BUFFER_LIMIT + 1
    assert transport.flow == ["pause"]  # nor is the socket read
    transport.sent()
    assert await reading == b"EHLO x\r\n"
    channel.abort()


async def test_a_client_that_does_not_read_times_out_waiting_to_be_read_from() -> None:
    channel, transport = open_channel()
    channel.send_raw(b"2" * (OUTPUT_BUFFER_LIMIT + 1))
    data_came = asyncio.create_task(channel.wait(0.05, asyncio.get_running_loop().time() + 5))
    await asyncio.sleep(0)
    channel.data_received(b"EHLO x\r\n")  # in flight when reading stopped: does not end the wait
    with pytest.raises(TimeoutError):
        await data_came
    assert transport.flow == ["pause"]
    channel.abort()


async def test_a_closed_connection_whose_client_does_not_read_is_dropped_after_the_grace() -> None:
    channel, transport = open_channel()
    channel.send_raw(b"421 4.4.2 Error: timeout exceeded\r\n")
    await channel.close(0.05)
    assert transport.closed
    assert transport.aborted
    assert transport.writes == [b"421 4.4.2 Error: timeout exceeded\r\n"]


async def test_a_closed_connection_whose_client_reads_is_not_dropped() -> None:
    channel, transport = open_channel()
    channel.send_raw(b"221 2.0.0 Bye\r\n")
    asyncio.get_running_loop().call_later(0.01, transport.sent)  # the client takes it
    await channel.close(5.0)
    assert transport.closed
    assert not transport.aborted
