"""The line channel: lines out of the buffer, long lines dropped, input bounded, replies batched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mxrelay.model import Reply
from mxrelay.smtp.channel import INPUT_BUFFER_LIMIT, ConnectionClosed, LineChannel


class Transport:
    """What the channel uses of an asyncio transport, recorded."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.flow: list[str] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 2525) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def pause_reading(self) -> None:
        self.flow.append("pause")

    def resume_reading(self) -> None:
        self.flow.append("resume")

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def idle(channel: LineChannel) -> None:
    await asyncio.Event().wait()


def open_channel() -> tuple[LineChannel, Transport]:
    channel, transport = LineChannel(idle), Transport()
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
