"""The HTTP listener's websocket writes: frames written in one turn of the event loop reach the
socket as one write, in order (`CoalescedWrites`), on a running relay's `/api/events` too; its
websockets take messages already encoded (`wire.WIRE`) between the others, of every length
encoding, until a close, and only where no extension was agreed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from mxrelay.config import HostPort
from mxrelay.web.server import (
    CoalescedWrites,
    CoalescingWebSocketProtocol,
    HttpLimits,
    HttpServer,
)
from mxrelay.web.wire import text_message, wire_sender
from tests.support.asgi_server import uvicorn_serving
from tests.support.polling import until
from tests.support.relay_app import running_relay


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("192.0.2.1", 80) if name == "peername" else default


async def test_writes_in_one_turn_of_the_loop_are_one_write_in_order() -> None:
    transport = Recording()
    coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
    for frame in (b"one", b"", b"two", bytearray(b"three")):
        coalesced.write(frame)
    assert transport.writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert transport.writes == [b"onetwothree"]
    coalesced.write(b"four")
    await asyncio.sleep(0)
    assert transport.writes == [b"onetwothree", b"four"]
    assert coalesced.get_extra_info("peername") == ("192.0.2.1", 80)  # the rest is the transport's


async def test_closing_sends_what_is_pending_and_aborting_drops_it() -> None:
    closing, aborting = Recording(), Recording()
    loop = asyncio.get_running_loop()
    first, second = CoalescedWrites(closing, loop), CoalescedWrites(aborting, loop)
    first.write(b"last words")
    first.close()
    assert (closing.writes, closing.closed) == ([b"last words"], True)
    second.write(b"never sent")
    second.abort()
    first.write(b"after the close")
    await asyncio.sleep(0)
    assert closing.writes == [b"last words"]
    assert (aborting.writes, aborting.aborted) == ([], True)


async def test_a_relays_event_socket_writes_through_it(tmp_path: Path) -> None:
    env = {"MXRELAY_DELIVERY": "hold", "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"}
    async with running_relay(env) as relay, connect(f"ws://127.0.0.1:{relay.web_port}/api/events"):
        assert relay.web is not None

        def sockets() -> list[CoalescingWebSocketProtocol]:
            assert relay.web is not None
            return [
                c
                for c in relay.web._server.server_state.connections
                if isinstance(c, CoalescingWebSocketProtocol)
            ]

        async def connected() -> bool:
            return len(sockets()) == 1

        await until(connected, what="the websocket on the server")
        assert isinstance(sockets()[0].transport, CoalescedWrites)


def wire_app(sent: list[bool]) -> Starlette:
    """A websocket that sends messages encoded by `text_message` where the server takes them,
    between text sent as usual, and after the client's close; what each send answered."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        send = wire_sender(websocket.scope)
        if send is None:
            await websocket.send_text("no wire")
            return
        sent.append(await send([text_message("one"), text_message("é" * 100)]))
        await websocket.send_text("between")
        sent.append(await send([text_message("x" * 70_000)]))
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()
        sent.append(await send([text_message("after the close")]))

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


async def test_the_relays_websockets_take_encoded_messages_until_a_close() -> None:
    sent: list[bool] = []
    server = HttpServer(wire_app(sent), HostPort("127.0.0.1", 0), HttpLimits(10, 10.0))
    await server.start()
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None) as socket:
            received = [await socket.recv() for _ in range(4)]

        async def answered() -> bool:
            return len(sent) == 3

        await until(answered, what="the send after the close")
    finally:
        await server.stop()
    assert received == ["one", "é" * 100, "between", "x" * 70_000]
    assert sent == [True, True, False]


async def test_no_encoded_messages_where_an_extension_was_agreed() -> None:
    """Per-message deflate, which the relay declines: an agreed extension may change frames."""
    sent: list[bool] = []
    config = {"ws": CoalescingWebSocketProtocol, "ws_per_message_deflate": True}
    async with uvicorn_serving(wire_app(sent), **config) as port:
        url = f"ws://127.0.0.1:{port}/ws"
        async with connect(url, compression="deflate") as socket:
            assert socket.protocol.extensions != []
            assert await socket.recv() == "no wire"
        async with connect(url, compression=None) as socket:
            assert await socket.recv() == "one"
