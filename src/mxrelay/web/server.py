"""Serve an ASGI application with uvicorn inside the relay's own event loop.

uvicorn normally installs its own SIGINT/SIGTERM handlers; the relay owns shutdown (SMTP drain
first, then delivery, then HTTP), so those handlers are disabled here.

The HTTP listeners share the process (and its file descriptors) with SMTP, so each one bounds what
a client can hold: at most `connection_limit` open connections (past it, a new one is closed as
soon as it is accepted), and a connection that has not sent a request's headers within
`header_timeout` of its start, or of the end of its previous response, is closed. uvicorn has
neither: `limit_concurrency` only answers 503 once a whole request has arrived, and its keep-alive
timer stops at the first byte, so a client sending half a request held a descriptor for ever.

A websocket's writes made in one turn of the event loop go out as one (`CoalescedWrites`): the
live events hand each client a poll's frames at once, and uvicorn writes every frame on its own,
a system call each, per client. The frames stay separate websocket messages.

The same protocol offers the application `wire.WIRE`: a send of messages already encoded as
frames, so the live events' frames, the same bytes for every client, are built once rather than
once per client by uvicorn and websockets (`web/wire.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from mxrelay.config import HostPort, WebSettings
from mxrelay.web.wire import WIRE


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client may hold on a listener (MXRELAY_HTTP_CONNECTION_LIMIT, _HEADER_TIMEOUT)."""

    connection_limit: int
    header_timeout: float

    @classmethod
    def from_settings(cls, web: WebSettings) -> HttpLimits:
        return cls(web.connection_limit, web.header_timeout.total_seconds())


def _guarded_protocol(limits: HttpLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the listener's connection cap and header deadline."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(  # type: ignore[override]
            self, transport: asyncio.Transport
        ) -> None:
            super().connection_made(transport)  # counts this one in self.connections
            if len(self.connections) > limits.connection_limit:
                transport.abort()  # frees the descriptor now; connection_lost forgets it
                return
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            # The connection is a websocket's from here on (uvicorn's websocket protocol, with
            # its pings): the header deadline no longer applies.
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(limits.header_timeout, self._expire)

        def _expire(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


class CoalescedWrites:
    """A transport whose writes in one turn of the event loop reach the socket as one write, in
    order; everything else is the wrapped transport's. Closing sends what is pending first;
    aborting drops it, as the transport's own abort drops its buffer."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol writing through `CoalescedWrites`, offering `WIRE`.

    `send_wire` relies on what uvicorn's protocol keeps of a connection (uvicorn 0.52.1 to 0.55
    at least): `run_asgi` starts the application with `scope`, `writable` is cleared while the
    transport's buffer is full (uvicorn's own send waits for it too), and `conn` is websockets'
    `ServerProtocol`, which leaves OPEN once a close is sent or received, and holds the
    extensions the handshake agreed. Where one of those is missing, the connection does not
    offer `WIRE` and the application sends text as usual. Messages written this way are not in
    websockets' debug log of frames sent."""

    RELIES_ON = ("scope", "writable", "conn")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalesced = CoalescedWrites(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, coalesced))

    async def run_asgi(self) -> None:
        if all(hasattr(self, name) for name in self.RELIES_ON) and not self.conn.extensions:
            self.scope.setdefault("extensions", {})[WIRE] = {"send": self.send_wire}
        await super().run_asgi()

    async def send_wire(self, messages: Sequence[bytes]) -> bool:
        """`wire.WireSend`: after the handshake, until a close is sent or received."""
        await self.writable.wait()
        if self.transport.is_closing() or self.conn.state is not State.OPEN:
            return False
        self.transport.write(b"".join(messages))
        return True


class HttpServer:
    """One listening HTTP server; `start()` binds before returning, so the port is known."""

    def __init__(self, app: ASGIApp, address: HostPort, limits: HttpLimits) -> None:
        self.address = address
        self.app = app
        """What it serves (tests read its routes)."""
        config = uvicorn.Config(
            app,
            http=_guarded_protocol(limits),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            # Websocket frames go out uncompressed: the server would deflate each live event
            # once per client (it cannot share one compressed frame between clients), which
            # costs every accepted message CPU per connected client, and a zlib context per
            # connection; the frames are small JSON.
            ws=CoalescingWebSocketProtocol,
            ws_per_message_deflate=False,
        )
        self._server = _Server(config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address.host, self.address.port))
        sock.set_inheritable(True)
        self._socket = sock
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)

    @property
    def open_connections(self) -> int:
        return len(self._server.server_state.connections)

    @property
    def port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._socket is not None:
            self._socket.close()
