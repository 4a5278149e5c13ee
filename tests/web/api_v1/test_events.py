"""`/api/events`' sending, on a real server with real websocket clients: under the relay's own
server each frame goes out as the bytes the hub encoded once (`wire.WIRE`), under another ASGI
server as text; either way every client gets every frame, intact and in order, whatever its
length encoding, and a client that stops reading is dropped with 1008 while the others keep up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mxrelay.config import HostPort
from mxrelay.web.api_v1.events import POLICY_VIOLATION, routes
from mxrelay.web.events import EventHub, EventLimits
from mxrelay.web.server import HttpLimits, HttpServer
from tests.support.asgi_server import uvicorn_serving
from tests.support.polling import until

Serving = Callable[[Starlette], AbstractAsyncContextManager[int]]


@contextlib.asynccontextmanager
async def relay_server(app: Starlette) -> AsyncIterator[int]:
    """The relay's `HttpServer`, whose websockets offer `wire.WIRE`."""
    server = HttpServer(app, HostPort("127.0.0.1", 0), HttpLimits(50, 10.0))
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def other_server(app: Starlette) -> AsyncIterator[int]:
    """uvicorn's own websocket protocol, without `wire.WIRE`: text through `send_text`."""
    async with uvicorn_serving(app, ws="websockets-sansio", ws_per_message_deflate=False) as port:
        yield port


SERVERS = pytest.mark.parametrize("serving", [relay_server, other_server], ids=["wire", "text"])


def hub(client_queue: int = 256) -> EventHub:
    limits = EventLimits(
        clients=10, poll_interval=1.0, stats_interval=1.0, client_queue=client_queue
    )
    return EventHub(lambda: None, limits)


async def connected(events: EventHub, count: int) -> None:
    async def all_in() -> bool:
        return len(events.clients) == count

    await until(all_in, what=f"{count} clients subscribed")


@SERVERS
async def test_every_client_gets_every_frame_intact_and_in_order(serving: Serving) -> None:
    events = hub()
    sizes = [0, 7, 125, 126, 200, 65_535, 65_536, 100_000]  # each length encoding, and its edges
    texts = [f"{index:03d}" + "é" * size for index, size in enumerate(sizes * 3)]
    async with serving(Starlette(routes=routes(events))) as port:
        url = f"ws://127.0.0.1:{port}/api/events"
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(connect(url, max_size=None)) for _ in range(4)
            ]
            await connected(events, 4)
            for start in range(0, len(texts), 5):  # a poll's frames at a time
                events.broadcast(texts[start : start + 5])
                await asyncio.sleep(0)
            for client in clients:
                assert [await client.recv() for _ in texts] == texts
    await events.aclose()


async def read_all(socket: ClientConnection) -> tuple[list[str], int | None]:
    """Every frame until the connection closes, and the close code it was sent."""
    frames: list[str] = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            frames.append(str(await socket.recv()))
    received = socket.protocol.close_rcvd
    return frames, None if received is None else received.code


@SERVERS
async def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_up(
    serving: Serving,
) -> None:
    """The server's send waits while the socket takes no more: the client's queue fills, and
    the client is dropped; what was queued before reaches it, then the close."""
    events = hub(client_queue=4)
    texts = [f"{index:03d}" + "x" * 256_000 for index in range(100)]
    async with serving(Starlette(routes=routes(events))) as port:
        url = f"ws://127.0.0.1:{port}/api/events"
        async with (
            connect(url, max_size=None, max_queue=1) as slow,
            connect(url, max_size=None) as quick,
        ):
            await connected(events, 2)
            reading = asyncio.create_task(read_all(quick))
            for text in texts:
                events.broadcast([text])
                await asyncio.sleep(0.002)
            assert len(events.clients) == 1  # the slow one dropped
            await events.aclose()  # the quick one is told to close too
            got, code = await read_all(slow)
            assert code == POLICY_VIOLATION
            assert 4 <= len(got) < len(texts)
            assert got == texts[: len(got)]
            assert await reading == (texts, POLICY_VIOLATION)
