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
  at 60/N seconds (plus a 0.5 % guard) and the achieved rate is the configured one. A message
  that must wait is *promised* its slot: the slot is taken at once and the message is told to
  come back exactly then, so a backlog of a thousand messages costs each of them one deferral,
  not one per slot. A sliding-window count backs it up (below).
- messages, requests per 10 minutes, upload bytes per 5 minutes, recipients per 24 hours:
  sliding windows. Exchange counts a request when it arrives, which mxrelay cannot see; it lies
  between the grant and the answer. So a request counts as present from its grant until its
  answer (in flight it may arrive at any moment) and is then recorded at the time of the answer,
  the latest it can have arrived. Every window that Exchange can count then holds no more than
  the limit, however long requests take on the way (proof in `SlidingWindow`).
- concurrency: a count of requests in flight for the whole app.
- Retry-After: closes the whole lane until then and voids the promises made before it.
A limit of 0 switches that limit off.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
from dataclasses import dataclass, field

CONCURRENCY_RETRY = 1.0
"""Seconds a message waits when every concurrent request slot is busy (the queue's next look)."""

WINDOW_GUARD = 0.005
"""Messages are spaced 0.5 % wider than the window allows (300 ms on a minute), so that the
sliding windows, which count a request until its answer, do not hold back a message sent on
time whenever the request a window earlier took up to that long (rate: 0.5 % under nominal)."""

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
    """Per-mailbox limits as "so many per window of so many seconds" (concurrency is per app);
    a limit of 0 is off. The defaults are Microsoft's; tests and benchmarks shorten the windows
    so that a minute's behaviour shows in a second."""

    messages: int = 30
    requests: int = 10_000
    upload_bytes: int = 150_000_000
    concurrency: int = 4
    recipients: int = 10_000
    messages_window: float = 60.0
    requests_window: float = 600.0
    upload_window: float = 300.0
    recipients_window: float = 86_400.0

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
    ticket: int = 0


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

    An event is *held* from its grant (in flight: present in every window from then on) until
    it is *settled* at the time of its answer, and then counts in every window (a - span, a]
    with a after that time. The remote side counts it at its arrival, somewhere in between.
    Take any remote window and the event in it granted last, k: every other event i in the
    window was granted before k and arrived after a - span ≥ grant(k) - span, so when k was
    granted, i was held or settled after grant(k) - span: it was counted. The check at k's
    grant therefore saw everything the remote window holds, and allowed it only within the limit.
    """

    __slots__ = ("_events", "held", "limit", "span", "total")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.total = 0  # settled events inside the window
        self.held = 0  # events in flight
        self._events: list[tuple[float, int]] = []  # settled, sorted by time

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _expire(self, now: float) -> None:
        events = self._events
        cut = bisect.bisect_right(events, (now - self.span + 1e-9, math.inf))  # float sums
        if cut:
            self.total -= sum(weight for _, weight in events[:cut])
            del events[:cut]

    def wait(self, now: float, weight: int) -> float:
        """Seconds until `weight` more fits (0 if it fits now, inf if it never can). When the
        events in flight alone fill the window the answer is a whole span: they will count
        for that long once they are answered."""
        if not self.enabled:
            return 0.0
        if weight > self.limit:
            return math.inf
        self._expire(now)
        excess = self.total + self.held + weight - self.limit
        if excess <= 0:
            return 0.0
        for at, amount in self._events:
            excess -= amount
            if excess <= 0:
                return max(at + self.span - now, 0.0)
        return self.span

    def hold(self, weight: int) -> None:
        if self.enabled:
            self.held += weight

    def settle(self, now: float, weight: int, *, keep: bool = True) -> None:
        """An event held since its grant was answered at `now`; `keep=False` drops it (a
        refund: it never reached the remote side's count)."""
        if not self.enabled:
            return
        self.held = max(self.held - weight, 0)
        if keep and weight > 0:
            bisect.insort(self._events, (now, weight))
            self.total += weight

    def idle(self, now: float) -> bool:
        self._expire(now)
        return not self._events and not self.held


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
        self._tickets = itertools.count(1)
        self._extra: dict[int, int] = {}  # extra requests (401 retries) per grant in flight
        self._last_sweep = -math.inf

    def _lane(self, name: str) -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            limits = self.limits
            spacing = limits.messages_window / limits.messages if limits.messages else 0.0
            lane = Lane(
                sent=SlidingWindow(limits.messages, limits.messages_window),
                requests=SlidingWindow(limits.requests, limits.requests_window),
                upload=SlidingWindow(limits.upload_bytes, limits.upload_window),
                recipients=SlidingWindow(limits.recipients, limits.recipients_window),
                spacing=spacing * (1.0 + WINDOW_GUARD),
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
        lane.sent.hold(1)
        lane.requests.hold(1)
        lane.upload.hold(size)
        lane.recipients.hold(recipients)
        self.in_flight += 1
        grant = Grant(lane_name, key, now, recipients, size, next(self._tickets))
        self._extra[grant.ticket] = 0
        return grant

    def _never(self, recipients: int, size: int) -> Never | None:
        limits = self.limits
        if limits.recipients and recipients > limits.recipients:
            return Never(
                Limit.RECIPIENTS,
                f"{recipients} recipients exceed the limit of {limits.recipients} per "
                f"{limits.recipients_window / 3600:g} hours per mailbox",
            )
        if limits.upload_bytes and size > limits.upload_bytes:
            return Never(
                Limit.UPLOAD_BYTES,
                f"a {size}-byte request exceeds the upload budget of {limits.upload_bytes} "
                f"bytes per {limits.upload_window / 60:g} minutes",
            )
        return None

    def request(self, grant: Grant, *, now: float) -> Wait | None:
        """One more HTTP request for a granted message (the retry after a 401)."""
        lane = self._lane(grant.lane)
        seconds = lane.requests.wait(now, 1)
        if seconds > 0:
            return Wait(seconds, Limit.REQUESTS)
        lane.requests.hold(1)
        self._extra[grant.ticket] = self._extra.get(grant.ticket, 0) + 1
        return None

    def release(self, grant: Grant, *, sent: bool, now: float) -> None:
        """The requests of `grant` were answered at `now` (or failed then). `sent=False` gives
        its recipients back to the daily budget: Graph refused the message, so Exchange does
        not count them."""
        self.in_flight = max(self.in_flight - 1, 0)
        extra = self._extra.pop(grant.ticket, 0)
        lane = self._lane(grant.lane)
        lane.sent.settle(now, 1)
        lane.requests.settle(now, 1 + extra)
        lane.upload.settle(now, grant.size)
        lane.recipients.settle(now, grant.recipients, keep=sent)

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
