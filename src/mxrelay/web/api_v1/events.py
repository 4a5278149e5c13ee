"""`GET /api/events`: the websocket of live events (frames from `web/events.py`'s hub).

A browser opens websockets across origins and sends its stored credentials with them, so a
page elsewhere could read the log through a user's browser: a handshake whose `Origin` is not the
relay's own (the `Host` it was asked under) is refused, as Mailpit refuses it; clients that are
not browsers send no `Origin`. Past the hub's client limit a handshake is refused too. Whatever a
client sends is read and ignored (uvicorn bounds its size and answers pings). `?brief=1` (mxrelay's,
what the console's pages ask for) subscribes to one frame without data per kind of event and poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mxrelay.web.events import EventClient, EventHub, TooManyClients
from mxrelay.web.wire import wire_sender

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


def same_origin(websocket: WebSocket) -> bool:
    """No `Origin` (not a browser), or one whose host and port are the `Host` asked for."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    host = websocket.headers.get("host", "").strip().lower()
    try:
        netloc = urlsplit(origin.strip()).netloc.lower()
    except ValueError:
        return False
    if not netloc or not host:
        return False
    scheme = urlsplit(origin.strip()).scheme.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return netloc == host or netloc + default == host or netloc == host + default


class Events:
    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    async def socket(self, websocket: WebSocket) -> None:
        if not same_origin(websocket):
            await websocket.close(POLICY_VIOLATION)
            return
        try:
            client = await self.hub.subscribe(brief=websocket.query_params.get("brief") == "1")
        except TooManyClients:
            await websocket.close(TRY_AGAIN_LATER)
            return
        try:
            await websocket.accept()
            sender = asyncio.create_task(self._send(websocket, client))
            try:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    while (await websocket.receive())["type"] != "websocket.disconnect":
                        pass
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
        finally:
            self.hub.unsubscribe(client)

    @staticmethod
    async def _send(websocket: WebSocket, client: EventClient) -> None:
        """What the client is sent: the relay's server takes each frame's bytes, encoded once for
        every client (`wire.WIRE`); through another, each frame is sent as text."""
        send_wire = wire_sender(websocket.scope)
        while (frames := await client.take()) is not None:
            if send_wire is None:
                for frame in frames:
                    await websocket.send_text(frame.text)
            elif not await send_wire([frame.wire for frame in frames]):
                return  # closing: the receiving side sees it end
        await websocket.close(POLICY_VIOLATION, "too slow: events were dropped")


def routes(hub: EventHub | None) -> list[BaseRoute]:
    if hub is None:
        return []
    return [WebSocketRoute("/api/events", Events(hub).socket)]
