"""A text message on the wire is the frame websockets builds for a server, byte for byte, with
each of the three length encodings, and a websocket client reads it back; `wire_sender` finds
the scope extension only where a server offers it."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from mxrelay.web.wire import WIRE, text_message, wire_sender


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ("", b"\x81\x00"),
        ("x" * 125, b"\x81\x7d"),  # the length in the second byte
        ("x" * 126, b"\x81\x7e\x00\x7e"),  # 126, then 2 bytes
        ("é" * 32767 + "x", b"\x81\x7e\xff\xff"),  # 65,535 bytes of UTF-8
        ("x" * 65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),  # 127, then 8 bytes
    ],
)
def test_a_text_message_is_the_frame_websockets_builds(text: str, header: bytes) -> None:
    wire = text_message(text)
    assert wire == header + text.encode()
    assert wire == Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    client = Protocol(Side.CLIENT, max_size=None)
    client.receive_data(wire + wire)
    received = client.events_received()
    assert all(isinstance(e, Frame) for e in received)
    frames = [(e.opcode, e.fin, bytes(e.data)) for e in received if isinstance(e, Frame)]
    assert frames == [(Opcode.TEXT, True, text.encode())] * 2


def test_the_wire_send_is_found_only_where_offered() -> None:
    async def send(messages: object) -> bool:
        return True

    assert wire_sender({"type": "websocket", "extensions": {WIRE: {"send": send}}}) is send
    assert wire_sender({"type": "websocket", "extensions": {"websocket.http.response": {}}}) is None
    assert wire_sender({"type": "websocket", "extensions": None}) is None
    assert wire_sender({"type": "websocket"}) is None
