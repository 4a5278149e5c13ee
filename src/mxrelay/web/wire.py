"""Websocket text messages as the bytes a server sends, encoded once for many connections.

Every live event goes to every client of `/api/events` as the same message. Sent as text through
the ASGI server, it is UTF-8 encoded and built into a frame once per client, by Starlette's,
uvicorn's and websockets' layers in turn: most of what each client cost the relay per event. A
server's frames are not masked (RFC 6455 §5.1), so one message is the same bytes on every
connection: the hub encodes it once (`text_message`), and a connection that offers `WIRE`
writes those bytes as they are.

`WIRE` is mxrelay's own ASGI scope extension, offered by the relay's websocket protocol
(`web/server.py`) on connections without an agreed extension (one could change how a frame is
built); `wire_sender` finds it, and where it is missing (another ASGI server) the application
sends text.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from starlette.types import Scope

WIRE = "mxrelay.websocket.wire"
"""The scope extension: `{"send": WireSend}`."""

WireSend = Callable[[Sequence[bytes]], Awaitable[bool]]
"""Writes whole messages from `text_message`, in order, once the connection's transport takes
more (as the server's own send waits); False, writing nothing, once the connection is closing
or closed. Nothing can come between the bytes of one message: the call writes all of them at
once, on the event loop, where a ping or a close is written too."""

FIN_TEXT = 0x81
"""FIN set (the whole message in one frame), no extension bits, opcode 1 (text)."""


def text_message(text: str) -> bytes:
    """`text` as one unmasked, unfragmented text frame (RFC 6455 §5.2): the length in the
    second byte up to 125, in the next 2 bytes up to 65,535 (126), else in the next 8 (127)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", FIN_TEXT, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", FIN_TEXT, 127, length)
    return header + payload


def wire_sender(scope: Scope) -> WireSend | None:
    """The connection's `WIRE` send, None where the server offers none."""
    extension = (scope.get("extensions") or {}).get(WIRE)
    return None if extension is None else cast(WireSend, extension["send"])
