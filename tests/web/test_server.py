"""The HTTP listener's websocket writes: frames written in one turn of the event loop reach the
socket as one write, in order (`CoalescedWrites`), on a running relay's `/api/events` too."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.asyncio.client import connect

from mxrelay.web.server import CoalescedWrites, CoalescingWebSocketProtocol
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
