"""One connection's bytes: buffered input, flow control, batched replies, and the switch to TLS.

`LineChannel` is the `asyncio.Protocol` the listener creates per socket. `data_received` only
appends to a buffer and wakes the session's coroutine (started at `connection_made`), which takes
complete lines, or the whole buffer during DATA, and queues its replies; they are written in one
batch whenever the coroutine has to wait for input, so a pipelining client gets one packet per batch
of commands. What the bytes mean is `connection.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, cast

from mxrelay import log
from mxrelay.model import Peer, Reply, TlsInfo

logger = logging.getLogger("mxrelay.smtp")

INPUT_BUFFER_LIMIT = 256 * 1024
"""Unhandled input a connection buffers before it stops reading from its socket."""


class ConnectionClosed(Exception):
    pass


class LineChannel(asyncio.Protocol):
    """Buffers one connection's input for the coroutine `run(channel)` and batches its output."""

    def __init__(self, run: Callable[[LineChannel], Coroutine[Any, Any, None]]) -> None:
        self.peer = Peer("", 0)
        self.buffer = bytearray()
        """Input not yet taken by the session (read it with `read_line`, or take it whole)."""
        self._run = run
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._paused = False
        self._task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(str(peer[0]), int(peer[1]))
        self._task = asyncio.get_running_loop().create_task(self._run(self))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # Stop reading once 256 KiB wait to be handled, in DATA too: the coroutine takes it all
        # when it next runs and resumes reading, so a connection's input stays bounded however
        # long the loop is busy elsewhere (message data is counted in the data budget instead).
        if len(self.buffer) > INPUT_BUFFER_LIMIT and not self._paused:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.interrupt(ConnectionClosed())

    # -- the session's side ---------------------------------------------------------------------

    def interrupt(self, exc: BaseException) -> None:
        """Raise `exc` into the session if it is waiting for input (not if it is busy)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, reply: Reply) -> None:
        self._out.append(reply.render())

    def send_raw(self, data: bytes) -> None:
        self._out.append(data)

    def flush(self) -> None:
        if self._out and self._transport is not None and not self._closed:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    async def wait(self, idle_limit: float, deadline: float) -> None:
        """Flush pending replies, then wait for more input: at most `idle_limit` seconds, and
        never past `deadline` (loop time), so a client that trickles bytes still times out."""
        self.flush()
        if self._closed:
            raise ConnectionClosed()
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        loop = asyncio.get_running_loop()
        limit = min(idle_limit, deadline - loop.time())
        if limit <= 0:
            raise TimeoutError()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_later(limit, _expire, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    async def read_line(self, limit: int, idle_limit: float, total_limit: float) -> bytes | None:
        """The next line with its line end; None for a line longer than `limit` (read and
        dropped). Waits `idle_limit` seconds for each byte, `total_limit` for the whole line."""
        buffer = self.buffer
        skipping = False
        deadline = 0.0  # set when the line is first awaited (a buffered line needs none)
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                if skipping or len(line) > limit:
                    return None
                return line
            if len(buffer) > limit:
                skipping = True
                buffer.clear()
            deadline = deadline or asyncio.get_running_loop().time() + total_limit
            await self.wait(idle_limit, deadline)

    async def start_tls(self, context: ssl.SSLContext, handshake_timeout: float) -> TlsInfo:
        """Send what is queued (the 220), then become the server side of a TLS handshake.

        Input that arrived before the handshake is dropped, unread: whatever a client pipelined
        after STARTTLS came in plaintext and must not count as sent over TLS (CVE-2011-0411).
        """
        self.buffer.clear()
        self.flush()
        assert self._transport is not None
        try:
            transport = await asyncio.get_running_loop().start_tls(
                self._transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=handshake_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.event(
                logger, "tls handshake failed", logging.INFO, client=str(self.peer), error=str(exc)
            )
            raise ConnectionClosed() from None
        if transport is None:
            raise ConnectionClosed()
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        return TlsInfo(
            version=ssl_object.version() or "" if ssl_object is not None else "",
            cipher=cipher[0] if cipher else "",
        )

    def close(self) -> None:
        """Write what is queued, then close."""
        self.flush()
        if self._transport is not None and not self._closed:
            self._transport.close()
        self._closed = True

    def abort(self) -> None:
        """Stop the session and drop the connection at once."""
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
