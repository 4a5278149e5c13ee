"""Live events for `/api/events`: one poller per process, fanned out to every websocket client.

The events come from the store (`store/feed.py`): whatever process or replica wrote a row, the
poller finds it, so SMTP ingest, the delivery process, API actions and other replicas on one
PostgreSQL all reach every client. The poller runs while at least one client is connected: it
reads every `poll_interval` on SQLite, and on PostgreSQL when a notification wakes it
(`store/notify.py`; the interval is then only the fallback). A handshake completes once the
poller has its starting point, so whatever is written after it reaches the new client.

Frames are Mailpit's `{"Type": …, "Data": …}`: `new` (a MessageSummary), `update`, `delete`,
`prune`, `truncate`, `error`, `stats` (`{Total, Unread, Version}`, at most every `stats_interval`,
after something changed), and mxrelay's `delivery` (an attempt, with each recipient's new state,
or an operator's queue action) and `refusal` (a recipient refused at RCPT). Each frame is encoded
once, as JSON and as the websocket message on the wire (`web/wire.py`), and queued for every
client; a client's queue holds `client_queue` frames, and a client that falls that far behind is
dropped (its socket closed), so a slow client never holds up the poller or the others. At most
`clients` are connected at once.

The SMTP side of this process hands the hub every message it commits (`accepted`): while a
client wants `new` frames, the poll that finds the message takes its summary from there
instead of reading it back (messages from other processes and replicas are read).

A `brief` client (the console's pages, which only re-read what changed) gets one frame without
data per kind of event a poll found, not one per event, and no `stats`: under a flood of mail
that is a frame a second instead of one per message for each open page. While only brief
clients are connected, new messages' summaries are not read nor frames encoded, the counts are
not read for `stats`, and the store is polled at most every `BRIEF_POLL` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mxrelay import __version__
from mxrelay.config import WebSettings
from mxrelay.log import event
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.feed import AttemptEvent, EventFeed, FeedEvents, mailbox_counts
from mxrelay.store.ingest import NewMessage
from mxrelay.store.message_log import accepted_summary
from mxrelay.store.notify import Wakeups
from mxrelay.web.api_v1.deliveries import attempt
from mxrelay.web.api_v1.mxrelay_refusals import refusal_json
from mxrelay.web.api_v1.shapes import summary
from mxrelay.web.wire import text_message

logger = logging.getLogger(__name__)

CLIENT_QUEUE = 256
"""Frames queued for one client before it counts as too slow (Mailpit's buffer)."""

LISTEN_FALLBACK = 20
"""On PostgreSQL, polls happen every `poll_interval` × this while notifications wake the poller."""

START_WAIT = 5.0
"""Seconds a new client waits for the poller's starting point (the store may be slow)."""

ERROR_BACKOFF = 2.0
"""Seconds between tries while the store cannot be read."""

BRIEF_POLL = 1.0
"""Seconds between polls while every client is brief (the console's pages re-read what changed
at most every two seconds)."""


@dataclass(frozen=True, slots=True)
class EventLimits:
    clients: int
    poll_interval: float
    stats_interval: float
    client_queue: int = CLIENT_QUEUE

    @classmethod
    def from_settings(cls, web: WebSettings) -> EventLimits:
        return cls(
            clients=web.events_client_limit,
            poll_interval=web.events_poll_interval.total_seconds(),
            stats_interval=web.events_stats_interval.total_seconds(),
        )


class TooManyClients(Exception):
    """The hub has `limits.clients` clients already."""


@dataclass(frozen=True, slots=True)
class EventFrame:
    """One frame as every client is sent it: Mailpit's JSON, and the same text as a websocket
    message on the wire, for connections that take it as it is (`wire.WIRE`)."""

    text: str
    wire: bytes

    @classmethod
    def of(cls, text: str) -> EventFrame:
        return cls(text, text_message(text))


class EventClient:
    """One connected websocket's queue of frames; None at the end means: dropped, close."""

    def __init__(self, size: int, *, brief: bool = False) -> None:
        self.queue: asyncio.Queue[EventFrame | None] = asyncio.Queue(size + 1)
        self.size = size
        self.brief = brief
        """Only one frame, without data, per kind of event a poll finds (`brief_frames`)."""
        self.dropped = False
        self._ended = False

    async def take(self) -> list[EventFrame] | None:
        """Every frame queued, waiting for the first; None once the client is dropped (after the
        frames queued before it). A poll's frames go out together, not one wake-up each."""
        if self._ended:
            return None
        frames: list[EventFrame] = []
        while (item := await self.queue.get()) is not None:
            frames.append(item)
            if self.queue.empty():
                return frames
        self._ended = True
        return frames or None

    def offer(self, frame: EventFrame) -> bool:
        """Queue a frame; False when the client is too far behind (then it is dropped)."""
        if self.dropped:
            return False
        if self.queue.qsize() >= self.size:
            self.dropped = True
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(frame)
        return True


def frame(kind: str, data: Any) -> str:
    return json.dumps({"Type": kind, "Data": data}, separators=(",", ":"))


def delivery_json(found: AttemptEvent) -> dict[str, Any]:
    """An attempt as the `delivery` frame carries it: `/deliveries`' attempt, the message's ID
    and what the attempt did for each recipient."""
    return {
        "ID": found.message_id,
        **attempt(found.view),
        "Recipients": [
            {
                "Address": r.recipient,
                "Status": r.status,
                "Code": r.code,
                "EnhancedStatus": r.enhanced,
                "Text": r.text,
            }
            for r in found.recipients
        ],
    }


def frames(events: FeedEvents) -> list[str]:
    """One poll's frames: new messages, attempts, refusals, then announced changes."""
    found = [frame("new", summary(message)) for message in events.new]
    found += [frame("delivery", delivery_json(a)) for a in events.attempts]
    found += [frame("refusal", refusal_json(r)) for r in events.refusals]
    found += [frame(c.kind.value, c.data) for c in events.changes if c.kind is not None]
    return found


def brief_frames(events: FeedEvents) -> list[str]:
    """One poll's events for brief clients: a frame without data per kind, in `frames`' order."""
    kinds = ["new"] if events.arrived else []
    kinds += ["delivery"] if events.attempts else []
    kinds += ["refusal"] if events.refusals else []
    kinds += [c.kind.value for c in events.changes if c.kind is not None]
    return [frame(kind, None) for kind in dict.fromkeys(kinds)]


def changes_counts(events: FeedEvents) -> bool:
    """Whether the message and unread counts may have changed."""
    return bool(events.arrived) or any(
        c.kind is not None and c.kind.value in ("update", "delete", "prune", "truncate")
        for c in events.changes
    )


class EventHub:
    """The clients of this process and the poller that feeds them."""

    def __init__(
        self,
        db: Callable[[], Database | None],
        limits: EventLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.limits = limits
        self.clock = clock
        self.clients: set[EventClient] = set()
        self.version = __version__ if __version__.startswith("v") else f"v{__version__}"
        self._poller: asyncio.Task[None] | None = None
        self._feed: EventFeed | None = None
        self._started = asyncio.Event()
        self._last_stats = float("-inf")
        self._stats_due: float | None = None
        self._polled = float("-inf")
        self.told_at = float("-inf")
        """When frames were last queued for the clients (on `clock`)."""

    async def subscribe(self, *, brief: bool = False) -> EventClient:
        """A new client, once the poller has its starting point: whatever is written after this
        returns reaches the client."""
        if len(self.clients) >= self.limits.clients:
            raise TooManyClients
        client = EventClient(self.limits.client_queue, brief=brief)
        self.clients.add(client)
        if self._poller is None or self._poller.done():
            self._started = asyncio.Event()
            self._poller = asyncio.get_running_loop().create_task(self._run(), name="events")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), START_WAIT)
        return client

    def accepted(self, record: NewMessage) -> None:
        """A message this process committed (`sinks.queued.Announcer`): its summary for the
        poll that will find it, while some client wants `new` frames."""
        feed = self._feed
        if feed is None or not feed.cursors or self._brief_only():
            return
        summary = accepted_summary(record)
        if summary is not None:
            feed.accepted.add(summary)

    def unsubscribe(self, client: EventClient) -> None:
        self.clients.discard(client)
        if not self.clients and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def broadcast(self, encoded: Sequence[str], brief: Sequence[str] | None = None) -> None:
        """`encoded` to every client, or `brief` instead to the brief ones when it is given."""
        self.told_at = self.clock()
        full = [EventFrame.of(text) for text in encoded]
        short = full if brief is None else [EventFrame.of(text) for text in brief]
        for client in list(self.clients):
            for message in short if client.brief else full:
                if not client.offer(message):
                    self.clients.discard(client)
                    event(logger, "events.client_dropped", logging.WARNING, reason="too slow")
                    break

    async def aclose(self) -> None:
        """Stop the poller and tell every client to close."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        for client in list(self.clients):
            client.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
        self.clients.clear()

    async def _run(self) -> None:
        database = self.db()
        if database is None:  # passthrough: no log, so no events
            self._started.set()
            return
        feed = self._feed = EventFeed(database)
        wakeups = Wakeups(database)
        failing = False
        try:
            while True:
                try:
                    if not feed.cursors:
                        await feed.start()
                        self._started.set()
                    self._polled = self.clock()
                    events = await feed.poll(summaries=not self._brief_only())
                    if events.arrived and not events.new and not self._brief_only():
                        # A client of Mailpit's frames came while the poll was under way.
                        events = replace(events, new=tuple(await feed.summaries(events.arrived)))
                    await self._publish(database, events)
                except Exception as exc:  # the store may fail; the poller must outlive it
                    if not failing:
                        detail = (
                            f"live events paused: the store cannot be read ({type(exc).__name__})"
                        )
                        event(
                            logger, "events.poll_failed", logging.WARNING, error=type(exc).__name__
                        )
                        self.broadcast([frame("error", detail)])
                    failing = True
                    await asyncio.sleep(ERROR_BACKOFF)
                    continue
                failing = False
                if events.more:
                    continue
                await wakeups.wait(self._timeout(database, feed))
                if self._brief_only():  # woken early (PostgreSQL): the pages can wait
                    await asyncio.sleep(max(self._polled + BRIEF_POLL - self.clock(), 0.0))
                await self._stats_if_due(database)
        finally:
            if self._feed is feed:
                self._feed = None
            await wakeups.aclose()

    def _brief_only(self) -> bool:
        return bool(self.clients) and all(client.brief for client in self.clients)

    def _timeout(self, database: Database, feed: EventFeed) -> float:
        interval = self.limits.poll_interval
        awaiting = any(cursor.awaited for cursor in feed.cursors.values())
        if database.dialect is Dialect.POSTGRESQL and not awaiting:
            interval *= LISTEN_FALLBACK
        elif self._brief_only():
            interval = max(interval, BRIEF_POLL)
        if self._stats_due is not None:
            interval = min(interval, max(self._stats_due - self.clock(), 0.0))
        return interval

    async def _publish(self, database: Database, events: FeedEvents) -> None:
        if events:
            full = any(not client.brief for client in self.clients)
            self.broadcast(frames(events) if full else [], brief_frames(events))
        if changes_counts(events):
            self._stats_due = max(self.clock(), self._last_stats + self.limits.stats_interval)
        await self._stats_if_due(database)

    async def _stats_if_due(self, database: Database) -> None:
        if self._stats_due is None or self.clock() < self._stats_due:
            return
        self._stats_due = None
        self._last_stats = self.clock()
        if self._brief_only():
            return
        total, unread = await mailbox_counts(database)
        data = {"Total": total, "Unread": unread, "Version": self.version}
        self.broadcast([frame("stats", data)], brief=[])
