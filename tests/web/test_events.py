"""`/api/events` with a real websocket client against a running relay: SMTP ingest, delivery to a
smarthost, a refused RCPT and announced API actions reach the client as Mailpit-style frames (an
`update` for every ID a read-flag request names, as Mailpit sends them); the
handshake is refused cross-origin, under a foreign Host and past the client limit; a client that
does not keep up is dropped without holding up the others; a brief client (the console's pages)
is told each kind of event once a poll, without data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import smtplib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from mxrelay.app import Relay
from mxrelay.store import listing
from mxrelay.store.changes import Change, ChangeKind, announce
from mxrelay.store.feed import FeedEvents
from mxrelay.store.listing import MessageSummary
from mxrelay.web.events import EventFrame, EventHub, EventLimits, brief_frames
from tests.support.dns_server import DnsServer
from tests.support.relay_app import running_relay
from tests.support.smarthost import Smarthost

MESSAGE = b"From: app@example.org\r\nTo: alex@example.net\r\nSubject: Hello\r\n\r\nHi.\r\n"


def env_for(dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path) -> dict[str, str]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    return {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_DELIVERY_PROCESS": "false",
        "MXRELAY_UPSTREAM": smarthost.url,
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "MXRELAY_HTTP_EVENTS_POLL_INTERVAL": "100ms",
        "MXRELAY_HTTP_EVENTS_STATS_INTERVAL": "100ms",
    }


@pytest.fixture
async def relay(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> AsyncIterator[Relay]:
    async with running_relay(env_for(dns_server, smarthost, tmp_path)) as running:
        yield running


def url(relay: Relay) -> str:
    return f"ws://127.0.0.1:{relay.web_port}/api/events"


async def frame_of(socket: ClientConnection, kind: str, within: float = 15.0) -> Any:
    """The data of the next frame of type `kind` (frames of other types are passed over)."""
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await socket.recv())
            assert set(frame) == {"Type", "Data"}
            if frame["Type"] == kind:
                return frame["Data"]


async def frames_of(socket: ClientConnection, *kinds: str, within: float = 15.0) -> dict[str, Any]:
    """The data of the first frame of each type in `kinds`, in whatever order they come."""
    found: dict[str, Any] = {}
    async with asyncio.timeout(within):
        while set(kinds) - set(found):
            frame = json.loads(await socket.recv())
            assert set(frame) == {"Type", "Data"}
            found.setdefault(frame["Type"], frame["Data"])
    return found


async def smtp(relay: Relay, recipients: list[str]) -> Mapping[str, tuple[int, bytes]]:
    def send() -> Mapping[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
            return client.sendmail("app@example.org", recipients, MESSAGE)

    return await asyncio.to_thread(send)


async def test_ingest_delivery_refusal_and_api_actions_reach_the_client(relay: Relay) -> None:
    async with connect(url(relay)) as socket:
        refused = await smtp(relay, ["alex@example.net", "x@nope.example.net"])
        assert list(refused) == ["x@nope.example.net"]
        found = await frames_of(socket, "new", "refusal", "delivery", "stats")
        new, refusal, delivery, stats = (found[k] for k in ("new", "refusal", "delivery", "stats"))
        assert new["Subject"] == "Hello"
        assert new["From"]["Address"] == "app@example.org"
        message_id = new["ID"]
        assert (refusal["Recipient"], refusal["Code"], refusal["Reason"]) == (
            "x@nope.example.net",
            550,
            "nxdomain",
        )
        assert (delivery["ID"], delivery["Outcome"], delivery["Code"]) == (
            message_id,
            "delivered",
            250,
        )
        assert [(r["Address"], r["Status"]) for r in delivery["Recipients"]] == [
            ("alex@example.net", "delivered")
        ]
        assert (stats["Total"], stats["Unread"]) == (1, 1)
        assert stats["Version"].startswith("v")
        # Reading the message marks it read, once: one update frame.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as http:
            assert (await http.get(f"/api/v1/message/{message_id}")).status_code == 200
            assert (await http.get(f"/api/v1/message/{message_id}")).status_code == 200
        assert await frame_of(socket, "update") == {"ID": message_id, "Read": True}
        # What the API's delete route announces after deleting (store/changes.py).
        assert relay.queue_stage is not None
        assert relay.queue_stage.db is not None
        await announce(relay.queue_stage.db, ChangeKind.DELETE, {"ID": message_id})
        assert await frame_of(socket, "delete") == {"ID": message_id}


NAMED = (
    "From: =?utf-8?q?J=C3=BCrgen?= <app@example.org>\r\nTo: Alex <alex@example.net>\r\n"
    "Cc: Zoë <zoe@example.net>\r\nReply-To: Desk <desk@example.org>\r\n"
    "Subject: Quartalsübersicht\r\n\r\nHallo.\r\n"
).encode()


async def test_a_new_message_is_announced_as_listed_without_reading_it_back(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMTP side hands the events what it committed: the `new` frame is the list's entry,
    key for key (names, Cc, the envelope-only recipient as Bcc), and the poll read no summary."""
    reads: list[int] = []
    read_summaries = listing.summaries

    def counted(conn: Connection, ids: Sequence[str]) -> list[MessageSummary]:
        reads.append(len(ids))
        return read_summaries(conn, ids)

    monkeypatch.setattr(listing, "summaries", counted)
    recipients = ["alex@example.net", "zoe@example.net", "hidden@example.net"]

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
            client.sendmail("app@example.org", recipients, NAMED)

    async with connect(url(relay)) as socket:
        await asyncio.to_thread(send)
        new = await frame_of(socket, "new")
        assert reads == []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as http:
            [listed] = (await http.get("/api/v1/messages")).json()["messages"]
    assert new == listed
    assert new["Bcc"] == [{"Name": "", "Address": "hidden@example.net"}]
    assert new["From"] == {"Name": "Jürgen", "Address": "app@example.org"}


async def test_marking_by_ids_tells_of_every_id_named(relay: Relay) -> None:
    """As Mailpit: an `update` for each ID a `PUT /api/v1/messages` names, in its order, whether
    its flag changed or not (it was already read; it is no message at all)."""
    async with connect(url(relay)) as socket:
        await smtp(relay, ["alex@example.net"])
        ident = (await frame_of(socket, "new"))["ID"]
        unknown = "01NOTAMESSAGE0000000000000"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as http:
            marked = await http.put("/api/v1/messages", json={"IDs": [ident], "Read": True})
            assert (marked.status_code, marked.text) == (200, "ok")
            assert await frame_of(socket, "update") == {"ID": ident, "Read": True}
            again = {"IDs": [ident, unknown, ident], "Read": True}
            assert (await http.put("/api/v1/messages", json=again)).status_code == 200
        assert [await frame_of(socket, "update") for _ in range(3)] == [
            {"ID": ident, "Read": True},
            {"ID": unknown, "Read": True},
            {"ID": ident, "Read": True},
        ]


async def test_a_websocket_outlives_the_header_timeout(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> None:
    env = {**env_for(dns_server, smarthost, tmp_path), "MXRELAY_HTTP_HEADER_TIMEOUT": "1s"}
    async with running_relay(env) as relay, connect(url(relay)) as socket:
        await asyncio.sleep(1.5)
        await smtp(relay, ["alex@example.net"])
        assert (await frame_of(socket, "new"))["Subject"] == "Hello"


async def test_frames_go_out_uncompressed(relay: Relay) -> None:
    """A client's offer of per-message deflate is declined: the relay would compress every frame
    once per client."""
    async with connect(url(relay), compression="deflate") as socket:
        assert socket.protocol.extensions == []
        await smtp(relay, ["alex@example.net"])
        assert (await frame_of(socket, "new"))["Subject"] == "Hello"


async def test_foreign_origins_and_hosts_are_refused(relay: Relay) -> None:
    own = f"http://127.0.0.1:{relay.web_port}"
    async with connect(url(relay), origin=own) as socket:  # type: ignore[arg-type]
        await socket.ping()
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(relay), origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    rebinding = f"ws://evil.example:{relay.web_port}/api/events"  # a name re-pointed at the relay
    with pytest.raises(InvalidStatus) as rebound:
        async with connect(rebinding, host="127.0.0.1", port=relay.web_port):
            pass
    assert rebound.value.response.status_code == 403


async def test_clients_past_the_limit_are_refused(
    dns_server: DnsServer, smarthost: Smarthost, tmp_path: Path
) -> None:
    env = {**env_for(dns_server, smarthost, tmp_path), "MXRELAY_HTTP_EVENTS_CLIENT_LIMIT": "1"}
    async with running_relay(env) as relay:
        async with connect(url(relay)) as first:
            await first.ping()
            with pytest.raises(InvalidStatus):
                async with connect(url(relay)):
                    pass
        await asyncio.sleep(0.2)  # the first one's end reaches the server
        async with connect(url(relay)) as again:
            await again.ping()


async def test_a_slow_client_is_dropped_and_the_others_get_everything() -> None:
    hub = EventHub(
        lambda: None, EventLimits(clients=10, poll_interval=1.0, stats_interval=1.0, client_queue=2)
    )
    slow = await hub.subscribe()
    quick = await hub.subscribe()
    got: list[list[EventFrame] | None] = []
    for index in range(4):
        hub.broadcast([f"frame {index}"])
        got.append(await quick.take())
    assert got == [[EventFrame.of(f"frame {i}")] for i in range(4)]
    assert slow.dropped
    assert slow not in hub.clients
    assert await slow.take() == [EventFrame.of("frame 0"), EventFrame.of("frame 1")]
    assert await slow.take() is None
    assert await slow.take() is None
    await hub.aclose()


async def test_each_frame_is_encoded_once_for_every_client() -> None:
    """The same bytes, the frame's websocket message, go to every client."""
    hub = EventHub(lambda: None, EventLimits(clients=10, poll_interval=1.0, stats_interval=1.0))
    clients = [await hub.subscribe() for _ in range(3)]
    text = '{"Type":"new","Data":"é"}'
    hub.broadcast([text])
    taken = [await client.take() for client in clients]
    assert all(frames is not None and len(frames) == 1 for frames in taken)
    wires = [frames[0].wire for frames in taken if frames is not None]
    assert wires[0] == bytes([0x81, len(text.encode())]) + text.encode()  # FIN, text; unmasked
    assert all(wire is wires[0] for wire in wires)
    await hub.aclose()


def test_brief_frames_name_each_kind_once() -> None:
    update = {"ID": "a", "Read": True}
    events = FeedEvents(
        arrived=("a", "b", "c"),
        changes=(
            Change(1, 0.0, ChangeKind.UPDATE, update),
            Change(2, 0.0, ChangeKind.UPDATE, {"ID": "b", "Read": True}),
            Change(3, 0.0, ChangeKind.DELETE, {"ID": "c"}),
            Change(4, 0.0, None, {}),
        ),
    )
    assert [json.loads(text) for text in brief_frames(events)] == [
        {"Type": "new", "Data": None},
        {"Type": "update", "Data": None},
        {"Type": "delete", "Data": None},
    ]
    assert brief_frames(FeedEvents()) == []


async def test_brief_and_full_clients_get_their_own_frames() -> None:
    hub = EventHub(lambda: None, EventLimits(clients=10, poll_interval=1.0, stats_interval=1.0))
    brief = await hub.subscribe(brief=True)
    full = await hub.subscribe()
    hub.broadcast(["full 1", "full 2"], ["brief"])
    hub.broadcast(["both"])
    hub.broadcast(["full only"], brief=[])
    assert await brief.take() == [EventFrame.of("brief"), EventFrame.of("both")]
    assert await full.take() == [
        EventFrame.of(text) for text in ("full 1", "full 2", "both", "full only")
    ]
    await hub.aclose()
    assert await full.take() is None  # closing: told to close


async def test_a_brief_client_is_told_each_kind_once_a_poll_and_no_stats(relay: Relay) -> None:
    """What the console's pages subscribe to: under a burst of mail a frame per kind and poll
    (polls a second apart while only such clients listen), without data and without `stats`;
    a client of Mailpit's frames beside one still gets every frame."""

    async def told(socket: ClientConnection, within: float) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while True:
                    found.append(json.loads(await socket.recv()))
        return found

    def burst() -> None:
        with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
            for _ in range(10):
                client.sendmail("app@example.org", ["alex@example.net"], MESSAGE)

    async with connect(url(relay) + "?brief=1") as brief:
        await smtp(relay, ["alex@example.net", "x@nope.example.net"])
        await asyncio.to_thread(burst)
        frames = await told(brief, 3)
        assert frames
        assert all(frame["Data"] is None for frame in frames)
        kinds = [frame["Type"] for frame in frames]
        assert set(kinds) == {"new", "refusal", "delivery"}  # and no stats
        assert kinds.count("new") < 5  # 11 messages
        async with connect(url(relay)) as full:
            await smtp(relay, ["alex@example.net"])
            assert (await frame_of(full, "new"))["Subject"] == "Hello"
            assert {"Type": "new", "Data": None} in await told(brief, 2)
