"""One connection's bytes: buffered input, flow control, batched replies, and the switch to TLS.

`LineChannel` is the `asyncio.Protocol` the listener creates per socket. `data_received` only
appends to a buffer and wakes the session's coroutine (started at `connection_made`), which takes
complete lines, or the whole buffer during DATA, and queues its replies; they are written in one
batch whenever the coroutine has to wait for input, so a pipelining client gets one packet per batch
of commands. Flow control goes both ways: past INPUT_BUFFER_LIMIT of unhandled input the socket is
not read, and past OUTPUT_BUFFER_LIMIT of unsent replies no command is taken (nor the socket read)
until the client reads, so neither side of a connection grows without bound. What the bytes mean is
`connection.py`'s.
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

OUTPUT_BUFFER_LIMIT = 64 * 1024
"""Unsent replies (queued here, or in the transport) past which the session takes no further
command, and the socket is not read, until the client has read some: a client that pipelines
commands and never reads would otherwise have the relay keep their replies without bound (an
`EHLO x` line brings back 14 times its size). 64 KiB is more than the replies to any batch a real
client pipelines (1,000 accepted recipients: 14 KiB), so a client that reads never waits on it; one
that does not read times out with 421 like any client that stops sending."""

CLOSE_GRACE = 10.0
"""Seconds a closed connection is given to take its last replies before it is dropped (capped by
the command timeout by the caller): replies a client never reads must not be kept, and the
connection keeps its slot among the connection limits until then."""


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
        self._queued = 0
        """Bytes in `_out`."""
        self._waiter: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        """Done when the connection is gone (`connection_lost`)."""
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        """Set by the transport (`pause_writing`) while it holds more than OUTPUT_BUFFER_LIMIT."""
        self._task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=OUTPUT_BUFFER_LIMIT)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(str(peer[0]), int(peer[1]))
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        self._task = loop.create_task(self._run(self))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # Stop reading once 256 KiB wait to be handled, in DATA too: the coroutine takes it all
        # when it next runs and resumes reading, so a connection's input stays bounded however
        # long the loop is busy elsewhere (message data is counted in the data budget instead).
        if len(self.buffer) > INPUT_BUFFER_LIMIT:
            self._pause_reading()
        self._wake()

    def pause_writing(self) -> None:
        # The client is not reading: stop reading it too, and take no command until it does
        # (`wait`, `read_line`), so its replies cannot pile up.
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writing_paused = False
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self.interrupt(ConnectionClosed())

    def _pause_reading(self) -> None:
        transport = self._transport
        if not self._reading_paused and transport is not None and not transport.is_closing():
            self._reading_paused = True
            transport.pause_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the session's side ---------------------------------------------------------------------

    def interrupt(self, exc: BaseException) -> None:
        """Raise `exc` into the session if it is waiting for input (not if it is busy)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, reply: Reply) -> None:
        self.send_raw(reply.render())

    def send_raw(self, data: bytes) -> None:
        self._out.append(data)
        self._queued += len(data)

    def flush(self) -> None:
        if self._out and self._transport is not None and not self._closed:
            self._transport.write(b"".join(self._out))
        self._out.clear()
        self._queued = 0

    @property
    def backlogged(self) -> bool:
        """Whether more than OUTPUT_BUFFER_LIMIT of replies wait unsent (here or in the transport)."""
        return self._writing_paused or self._queued > OUTPUT_BUFFER_LIMIT

    async def drain(self, idle_limit: float, deadline: float) -> None:
        """Flush pending replies and, if the client is not taking them, wait until it has read
        some: at most `idle_limit` seconds, never past `deadline` (TimeoutError)."""
        self.flush()
        if self._closed:
            raise ConnectionClosed()
        while self._writing_paused:
            await self._woken(idle_limit, deadline)

    async def wait(self, idle_limit: float, deadline: float) -> None:
        """Flush pending replies, then wait for more input: at most `idle_limit` seconds, and
        never past `deadline` (loop time), so a client that trickles bytes still times out.
        A client that does not read its replies is not read either (`drain` first)."""
        await self.drain(idle_limit, deadline)
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        await self._woken(idle_limit, deadline)

    async def _woken(self, idle_limit: float, deadline: float) -> None:
        """Wait for input, for the transport to take more output, or for an interruption."""
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
            if end >= 0 and self.backlogged:
                # Lines are waiting, but so are too many replies: no more until the client reads.
                deadline = deadline or asyncio.get_running_loop().time() + total_limit
                await self.drain(idle_limit, deadline)
                continue
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
        # The plaintext transport's flow control is now the TLS layer's; this one starts afresh.
        self._reading_paused = self._writing_paused = False
        transport.set_write_buffer_limits(high=OUTPUT_BUFFER_LIMIT)
        ssl_object = transport.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        return TlsInfo(
            version=ssl_object.version() or "" if ssl_object is not None else "",
            cipher=cipher[0] if cipher else "",
        )

    async def close(self, grace: float) -> None:
        """Write what is queued, close, and wait for the connection to go: a client that has not
        taken the last replies within `grace` seconds is dropped, so the relay does not keep
        replies that are never read, however the session ended."""
        self.flush()
        transport, lost = self._transport, self._lost
        self._closed = True
        if transport is None or lost is None or lost.done():
            return
        transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(lost), grace)
        except TimeoutError:
            transport.abort()

    def abort(self) -> None:
        """Stop the session and drop the connection at once."""
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
