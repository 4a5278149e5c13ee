"""Pacing for Microsoft Graph: per-mailbox lanes that keep Exchange's limits from ever being hit.

Exchange Online and Graph limit each sending mailbox (30 messages a minute, 10,000 requests per 10
minutes, 150 MB of uploads per 5 minutes, 10,000 recipients per rolling 24 hours) and each app (4
concurrent requests). A throttled call still counts against the limit, so collecting 429s only
makes things worse: mxrelay asks this module *before* each request and, when the answer is "not
now", leaves the message in the queue with the time to come back (`Wait`).

This module owns the bookkeeping and the decisions only; it does no I/O and reads no clock (every
call takes `now`, in seconds on a monotonic scale). The Graph transport owns the `Pacer`, turns a
`Wait` into `Throttled(retry_after)` and reports Retry-After answers back with `block()`.

How each limit is kept:
- messages per minute: a GCRA (a leaky bucket with no burst), so messages go out evenly spaced
  at 60/N seconds and the achieved rate equals the configured one. A message that must wait is
  *promised* its slot: the slot is taken at once and the message is told to come back exactly
  then, so a backlog of a thousand messages costs each of them one deferral, not one per slot.
  A sliding-window count of actual sends backs it up, so no window of 60 s ever holds more than N
  sends even when the queue hands promised messages back late.
- requests per 10 minutes, upload bytes per 5 minutes, recipients per 24 hours: sliding windows
  over what was actually sent (exact: no window of that length ever holds more than the limit).
- concurrency: a count of requests in flight for the whole app.
- Retry-After: closes the whole lane until then and voids the promises made before it.
A limit of 0 switches that limit off.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

CONCURRENCY_RETRY = 1.0
"""Seconds a message waits when every concurrent request slot is busy (the queue's next look)."""

EARLY_GRANT = 0.005
"""A promised message that comes back this many seconds early still goes: the queue's timers
round, and sending 5 ms early cannot break a limit that the sliding windows enforce anyway."""

SWEEP_INTERVAL = 60.0
IDLE_LANE_SECONDS = 24 * 3600.0


class Limit(enum.StrEnum):
    """Which limit made a message wait; also the metric label (a small, fixed set)."""

    RETRY_AFTER = "retry_after"
    CONCURRENCY = "concurrency"
    MESSAGES = "messages"
    REQUESTS = "requests"
    UPLOAD_BYTES = "upload_bytes"
    RECIPIENTS = "recipients"


@dataclass(frozen=True, slots=True)
class PacingLimits:
    """Per-mailbox limits (concurrency is per app); 0 switches a limit off."""

    messages_per_minute: int = 30
    requests_per_10_minutes: int = 10_000
    upload_bytes_per_5_minutes: int = 150_000_000
    concurrency: int = 4
    daily_recipients: int = 10_000

    @classmethod
    def off(cls) -> PacingLimits:
        return cls(0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission to send one message now; hand it back with `Pacer.release`."""

    lane: str
    key: str
    at: float
    recipients: int
    size: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: come back in `seconds` (the limit that decided is named for logs and metrics)."""

    seconds: float
    limit: Limit


@dataclass(frozen=True, slots=True)
class Never:
    """The message can never fit this limit (it alone exceeds the budget)."""

    limit: Limit
    detail: str


Decision = Grant | Wait | Never


class SlidingWindow:
    """Weighted events in a sliding window of `span` seconds whose total stays within `limit`.

    An event at time t counts in every window (a - span, a] that contains it. Events are only
    added at the current time after checking the window that ends now, and time never goes back,
    so every window of that length (not just the ones checked) stays within the limit.
    """

    __slots__ = ("_events", "limit", "span", "total")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.total = 0
        self._events: deque[tuple[float, int]] = deque()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _expire(self, now: float) -> None:
        events = self._events
        while events and events[0][0] <= now - self.span:
            self.total -= events.popleft()[1]

    def wait(self, now: float, weight: int) -> float:
        """Seconds until `weight` more fits (0 if it fits now, inf if it never can)."""
        if not self.enabled:
            return 0.0
        if weight > self.limit:
            return math.inf
        self._expire(now)
        excess = self.total + weight - self.limit
        if excess <= 0:
            return 0.0
        for at, amount in self._events:
            excess -= amount
            if excess <= 0:
                return max(at + self.span - now, 0.0)
        return math.inf  # unreachable: the events hold the whole total

    def add(self, now: float, weight: int) -> None:
        if self.enabled and weight > 0:
            self._expire(now)
            self._events.append((now, weight))
            self.total += weight

    def remove(self, at: float, weight: int) -> None:
        """Take back an event recorded at `at` (a refund); unknown events are ignored."""
        for index, (when, amount) in enumerate(self._events):
            if when == at and amount == weight:
                del self._events[index]
                self.total -= weight
                return

    def idle(self, now: float) -> bool:
        self._expire(now)
        return not self._events


@dataclass(slots=True)
class Lane:
    """The pacing state of one sending mailbox."""

    sent: SlidingWindow
    requests: SlidingWindow
    upload: SlidingWindow
    recipients: SlidingWindow
    spacing: float
    next_slot: float = -math.inf
    blocked_until: float = -math.inf
    promises: dict[str, float] = field(default_factory=dict)

    def idle(self, now: float) -> bool:
        return (
            not self.promises
            and self.next_slot <= now
            and self.blocked_until <= now
            and all(w.idle(now) for w in (self.sent, self.requests, self.upload, self.recipients))
        )


class Pacer:
    """Lanes per sending mailbox plus the app-wide concurrency count.

    Mutable, but owned: the Graph transport creates one and is its only user (no global state).
    Lane keys are mailbox addresses as the transport normalises them; message keys identify one
    queue entry across its deferrals (message id and variant).
    """

    def __init__(self, limits: PacingLimits) -> None:
        self.limits = limits
        self.in_flight = 0
        self._lanes: dict[str, Lane] = {}
        self._last_sweep = -math.inf

    def _lane(self, name: str) -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            limits = self.limits
            lane = Lane(
                sent=SlidingWindow(limits.messages_per_minute, 60.0),
                requests=SlidingWindow(limits.requests_per_10_minutes, 600.0),
                upload=SlidingWindow(limits.upload_bytes_per_5_minutes, 300.0),
                recipients=SlidingWindow(limits.daily_recipients, 86400.0),
                spacing=60.0 / limits.messages_per_minute if limits.messages_per_minute else 0.0,
            )
            self._lanes[name] = lane
        return lane

    def acquire(
        self, lane_name: str, key: str, *, recipients: int, size: int, now: float
    ) -> Decision:
        """May message `key` (to `recipients` recipients, `size` bytes uploaded) go now?

        On `Grant` the message, its request, bytes and recipients are recorded and a concurrency
        slot is taken: the caller must `release` it. `Wait` and `Never` change nothing except
        the promise of a messages-per-minute slot.
        """
        self._sweep(now)
        lane = self._lane(lane_name)
        if lane.blocked_until > now:
            return Wait(lane.blocked_until - now, Limit.RETRY_AFTER)
        if self.limits.concurrency and self.in_flight >= self.limits.concurrency:
            return Wait(CONCURRENCY_RETRY, Limit.CONCURRENCY)
        never = self._never(recipients, size)
        if never is not None:
            return never
        waits = (
            (lane.sent.wait(now, 1), Limit.MESSAGES),
            (lane.requests.wait(now, 1), Limit.REQUESTS),
            (lane.upload.wait(now, size), Limit.UPLOAD_BYTES),
            (lane.recipients.wait(now, recipients), Limit.RECIPIENTS),
        )
        seconds, limit = max(waits, key=lambda pair: pair[0])
        if seconds > 0:
            return Wait(seconds, limit)
        if lane.spacing:
            promised = lane.promises.get(key)
            if promised is None:
                promised = max(lane.next_slot, now)
                lane.next_slot = promised + lane.spacing
            if promised - now > EARLY_GRANT:
                lane.promises[key] = promised
                return Wait(promised - now, Limit.MESSAGES)
            lane.promises.pop(key, None)
        lane.sent.add(now, 1)
        lane.requests.add(now, 1)
        lane.upload.add(now, size)
        lane.recipients.add(now, recipients)
        self.in_flight += 1
        return Grant(lane_name, key, now, recipients, size)

    def _never(self, recipients: int, size: int) -> Never | None:
        limits = self.limits
        if limits.daily_recipients and recipients > limits.daily_recipients:
            return Never(
                Limit.RECIPIENTS,
                f"{recipients} recipients exceed the daily recipient limit of "
                f"{limits.daily_recipients} per mailbox",
            )
        if limits.upload_bytes_per_5_minutes and size > limits.upload_bytes_per_5_minutes:
            return Never(
                Limit.UPLOAD_BYTES,
                f"a {size}-byte request exceeds the upload budget of "
                f"{limits.upload_bytes_per_5_minutes} bytes per 5 minutes",
            )
        return None

    def request(self, lane_name: str, *, now: float) -> Wait | None:
        """One more HTTP request for a message already granted (the retry after a 401)."""
        lane = self._lane(lane_name)
        seconds = lane.requests.wait(now, 1)
        if seconds > 0:
            return Wait(seconds, Limit.REQUESTS)
        lane.requests.add(now, 1)
        return None

    def release(self, grant: Grant, *, sent: bool) -> None:
        """The request of `grant` is over; `sent=False` gives its recipients back to the
        daily budget (Graph refused the message, so Exchange will not count them)."""
        self.in_flight = max(self.in_flight - 1, 0)
        if not sent:
            lane = self._lanes.get(grant.lane)
            if lane is not None:
                lane.recipients.remove(grant.at, grant.recipients)

    def block(self, lane_name: str, seconds: float, *, now: float) -> None:
        """Graph said Retry-After: nothing goes on this lane for `seconds`.

        Promises made before are void (their slots fall inside the pause); the messages holding
        them are given new slots after it, in the order they come back.
        """
        lane = self._lane(lane_name)
        until = now + max(seconds, 0.0)
        lane.blocked_until = max(lane.blocked_until, until)
        lane.promises.clear()
        lane.next_slot = max(lane.next_slot, lane.blocked_until)

    def _sweep(self, now: float) -> None:
        """Forget lanes that have nothing left to remember (bounded memory, at most once a
        minute). Promises older than a day belong to entries that never came back."""
        if now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        for name in list(self._lanes):
            lane = self._lanes[name]
            for key, slot in list(lane.promises.items()):
                if slot < now - IDLE_LANE_SECONDS:
                    del lane.promises[key]
            if lane.idle(now):
                del self._lanes[name]

    def lanes(self) -> int:
        return len(self._lanes)
