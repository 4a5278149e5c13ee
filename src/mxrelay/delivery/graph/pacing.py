"""Pacing for Microsoft Graph: per-mailbox lanes that keep Exchange's limits from ever being hit.

Exchange Online and Graph limit each sending mailbox (30 messages a minute, 10,000 requests per 10
minutes, 150 MB of uploads per 5 minutes, 10,000 recipients per rolling 24 hours) and each app (4
concurrent requests). A throttled call still counts against the limit, so collecting 429s only
makes things worse: mxrelay asks this module *before* each request and, when the answer is "not
now", leaves the message in the queue with the time to come back (`Wait`).

This module owns the state and the rules only: plain values (`LaneState` per mailbox, `AppState`
for the requests in flight, as leases) and functions of them that do no I/O and read no clock
(every call takes `now`, in seconds). Where the state lives is not its concern: `Pacer` keeps it
in this process (one relay per SQLite file), `lanes.py` keeps it in the store when
replicas share a PostgreSQL queue, so that together they pace each mailbox as one relay would;
both apply these same rules. The Graph transport turns a `Wait` into `Throttled(retry_after)` and
reports Retry-After answers back with `block`.

How each limit is kept:
- messages per minute: a GCRA (a leaky bucket with no burst), so messages go out evenly spaced
  at 60/N seconds (plus a 0.5 % guard) and the achieved rate is the configured one. A message
  that must wait is *promised* its slot: the slot is taken at once and the message is told to
  come back exactly then, so a backlog of a thousand messages costs each of them one deferral,
  not one per slot. A sliding-window count backs it up (below).
- messages, requests per 10 minutes, upload bytes per 5 minutes, recipients per 24 hours:
  sliding windows. Exchange counts a request when it arrives, which mxrelay cannot see; it lies
  between the grant and the answer. So a request counts as present from its grant until its
  answer (in flight it may arrive at any moment: its lease holds it) and is then recorded at the
  time of the answer, the latest it can have arrived. Every window that Exchange can count then
  holds no more than the limit, however long requests take on the way (proof in `SlidingWindow`).
- concurrency: a count of the leases in flight for the whole app. A lease that is never handed
  back (its relay died) lapses at its expiry and counts as answered then.
- Retry-After: closes the whole lane until then and voids the promises made before it.
A limit of 0 switches that limit off.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mxrelay.model import PacingLimit

CONCURRENCY_RETRY = 1.0
"""Seconds a message waits when every concurrent request slot is busy (the queue's next look)."""

WINDOW_GUARD = 0.005
"""Messages are spaced 0.5 % wider than the window allows (300 ms on a minute), so that the
sliding windows, which count a request until its answer, do not hold back a message sent on
time whenever the request a window earlier took up to that long (rate: 0.5 % under nominal)."""

EARLY_GRANT = 0.005
"""A promised message that comes back this many seconds early still goes: the queue's timers
round, and sending 5 ms early cannot break a limit that the sliding windows enforce anyway."""

MESSAGE_BUCKETS = 512
"""A crowded messages window keeps its events at 1/512 of its span (117 ms on a minute): well
inside the guard, so rounding never holds back a message sent on time."""

WINDOW_BUCKETS = 64
"""A crowded window of another kind keeps them at 1/64 of its span (about 1.5 % of the budget
held back at worst), so that a lane's state stays a few kilobytes however busy the mailbox."""

SWEEP_INTERVAL = 60.0
IDLE_LANE_SECONDS = 24 * 3600.0


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

    @property
    def spacing(self) -> float:
        """Seconds between two messages of one lane (0: not spaced)."""
        if not self.messages:
            return 0.0
        return self.messages_window / self.messages * (1.0 + WINDOW_GUARD)


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission to send one message now; hand it back with `release`."""

    lane: str
    key: str
    at: float
    recipients: int
    size: int
    ticket: str = ""


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: come back in `seconds` (the limit that decided is named for logs and metrics)."""

    seconds: float
    limit: PacingLimit


@dataclass(frozen=True, slots=True)
class Never:
    """The message can never fit this limit (it alone exceeds the budget)."""

    limit: PacingLimit
    detail: str


Decision = Grant | Wait | Never


class SlidingWindow:
    """Weighted events in a sliding window of `span` seconds whose total stays within `limit`.

    An event is *held* from its grant (in flight: present in every window from then on; the
    caller passes what is held) until it is *settled* at the time of its answer, and then counts
    in every window (a - span, a] with a after that time. The remote side counts it at its
    arrival, somewhere in between. Take any remote window and the event in it granted last, k:
    every other event i in the window was granted before k and arrived after a - span ≥ grant(k)
    - span, so when k was granted, i was held or settled after grant(k) - span: it was counted.
    The check at k's grant therefore saw everything the remote window holds, and allowed it only
    within the limit.

    Settled events are kept at their exact times until the window holds more than twice
    `buckets` of them; then they are put on a grid of `span / buckets` seconds, each time rounded
    up (an event counts a little longer, never shorter), so that a window's state stays small.
    """

    __slots__ = ("_times", "_weights", "buckets", "limit", "span", "total")

    def __init__(
        self,
        limit: int,
        span: float,
        *,
        buckets: int = WINDOW_BUCKETS,
        events: Iterable[tuple[float, int]] = (),
    ) -> None:
        self.limit = limit
        self.span = span
        self.buckets = max(buckets, 1)
        ordered = sorted(events)
        self._times = [at for at, _ in ordered]  # settled, in order (two lists: cheap to load)
        self._weights = [weight for _, weight in ordered]
        self.total = sum(self._weights)

    @classmethod
    def load(
        cls, limit: int, span: float, buckets: int, data: Sequence[Sequence[float]]
    ) -> SlidingWindow:
        """The window `dump()` wrote: its times and weights as two lists."""
        window = cls(limit, span, buckets=buckets)
        if len(data) == 2 and len(data[0]) == len(data[1]):
            window._times = [float(at) for at in data[0]]
            window._weights = [int(weight) for weight in data[1]]
            window.total = sum(window._weights)
        return window

    def dump(self) -> list[Sequence[float]]:
        return [self._times, self._weights]

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def events(self) -> list[tuple[float, int]]:
        return list(zip(self._times, self._weights, strict=True))

    def _expire(self, now: float) -> None:
        cut = bisect.bisect_right(self._times, now - self.span + 1e-9)  # float sums
        if cut:
            self.total -= sum(self._weights[:cut])
            del self._times[:cut]
            del self._weights[:cut]

    def wait(self, now: float, weight: int, held: int = 0) -> float:
        """Seconds until `weight` more fits beside the `held` events in flight (0 if it fits
        now, inf if it never can). When the events in flight alone fill the window the answer is
        a whole span: they will count for that long once they are answered."""
        if not self.enabled:
            return 0.0
        if weight > self.limit:
            return math.inf
        self._expire(now)
        excess = self.total + held + weight - self.limit
        if excess <= 0:
            return 0.0
        for at, amount in zip(self._times, self._weights, strict=True):
            excess -= amount
            if excess <= 0:
                return max(at + self.span - now, 0.0)
        return self.span

    def settle(self, at: float, weight: int) -> None:
        """An event held since its grant was answered at `at`: it counts from now on."""
        if not self.enabled or weight <= 0:
            return
        index = bisect.bisect_right(self._times, at)
        self._times.insert(index, at)
        self._weights.insert(index, weight)
        self.total += weight
        if len(self._times) > 2 * self.buckets:
            self._coarsen(at)

    def _coarsen(self, now: float) -> None:
        """Round every event up to the grid and merge those that meet (about `buckets` left)."""
        self._expire(now)
        step = self.span / self.buckets
        merged: dict[float, int] = {}
        for at, weight in zip(self._times, self._weights, strict=True):  # rounding keeps order
            stamp = math.ceil(at / step) * step
            merged[stamp] = merged.get(stamp, 0) + weight
        self._times = list(merged)
        self._weights = list(merged.values())

    def idle(self, now: float) -> bool:
        self._expire(now)
        return not self._times


@dataclass(frozen=True, slots=True)
class Lease:
    """A request in flight: it holds a concurrency slot and its lane's budgets until handed back,
    or until `expires` (its relay died), when it counts as answered."""

    ticket: str
    lane: str
    at: float
    expires: float
    size: int
    recipients: int
    requests: int = 1


@dataclass(slots=True)
class AppState:
    """What is app-wide: the leases in flight, by ticket."""

    leases: dict[str, Lease] = field(default_factory=dict)

    def live(self, now: float) -> list[Lease]:
        return [lease for lease in self.leases.values() if lease.expires > now]

    def dump(self) -> dict[str, Any]:
        return {"leases": [list(_lease_fields(lease)) for lease in self.leases.values()]}

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> AppState:
        leases = (Lease(*item) for item in data.get("leases", ()))
        return cls({lease.ticket: lease for lease in leases})


def _lease_fields(lease: Lease) -> tuple[Any, ...]:
    return (
        lease.ticket,
        lease.lane,
        lease.at,
        lease.expires,
        lease.size,
        lease.recipients,
        lease.requests,
    )


@dataclass(slots=True)
class LaneState:
    """The pacing state of one sending mailbox (promises are kept beside it, by message)."""

    sent: SlidingWindow
    requests: SlidingWindow
    upload: SlidingWindow
    recipients: SlidingWindow
    next_slot: float = -math.inf
    blocked_until: float = -math.inf

    @classmethod
    def new(cls, limits: PacingLimits, data: Mapping[str, Any] | None = None) -> LaneState:
        """A fresh lane, or the one `dump()` wrote (under the limits in force now)."""
        data = data or {}

        def window(name: str, limit: int, span: float, buckets: int) -> SlidingWindow:
            return SlidingWindow.load(limit, span, buckets, data.get(name, ()))

        return cls(
            sent=window("sent", limits.messages, limits.messages_window, MESSAGE_BUCKETS),
            requests=window("requests", limits.requests, limits.requests_window, WINDOW_BUCKETS),
            upload=window("upload", limits.upload_bytes, limits.upload_window, WINDOW_BUCKETS),
            recipients=window(
                "recipients", limits.recipients, limits.recipients_window, WINDOW_BUCKETS
            ),
            next_slot=_time(data.get("next_slot")),
            blocked_until=_time(data.get("blocked_until")),
        )

    def dump(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, window in self.windows():
            if window.total:
                data[name] = window.dump()
        if math.isfinite(self.next_slot):
            data["next_slot"] = self.next_slot
        if math.isfinite(self.blocked_until):
            data["blocked_until"] = self.blocked_until
        return data

    def windows(self) -> tuple[tuple[str, SlidingWindow], ...]:
        return (
            ("sent", self.sent),
            ("requests", self.requests),
            ("upload", self.upload),
            ("recipients", self.recipients),
        )

    def idle(self, now: float) -> bool:
        return (
            self.next_slot <= now
            and self.blocked_until <= now
            and all(window.idle(now) for _, window in self.windows())
        )


def _time(value: object) -> float:
    return float(value) if isinstance(value, int | float) else -math.inf


# --- the rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ask:
    """May message `key` (to `recipients` recipients, `size` bytes uploaded) go now on `lane`?
    On a grant its lease is `ticket`, lapsing at `expires`; `promised` is the slot promised to
    this message earlier, if any."""

    lane: str
    key: str
    recipients: int
    size: int
    ticket: str
    expires: float
    promised: float | None = None


def admit(
    app: AppState, lane: LaneState, ask: Ask, limits: PacingLimits, now: float
) -> tuple[Decision, float | None]:
    """The decision for `ask`, and the slot promised to its message afterwards (None: none).

    On `Grant` the message's lease is added to `app` (hand it back with `release`); `Wait` and
    `Never` change nothing except the promise of a messages-per-minute slot.
    """
    lapse(app, ask.lane, lane, now)
    promised = ask.promised
    if lane.blocked_until > now:
        return Wait(lane.blocked_until - now, PacingLimit.RETRY_AFTER), promised
    live = app.live(now)
    if limits.concurrency and len(live) >= limits.concurrency:
        return Wait(CONCURRENCY_RETRY, PacingLimit.CONCURRENCY), promised
    never = _never(limits, ask.recipients, ask.size)
    if never is not None:
        return never, promised
    held = [lease for lease in live if lease.lane == ask.lane]
    waits = (
        (lane.sent.wait(now, 1, len(held)), PacingLimit.MESSAGES),
        (lane.requests.wait(now, 1, sum(h.requests for h in held)), PacingLimit.REQUESTS),
        (lane.upload.wait(now, ask.size, sum(h.size for h in held)), PacingLimit.UPLOAD_BYTES),
        (
            lane.recipients.wait(now, ask.recipients, sum(h.recipients for h in held)),
            PacingLimit.RECIPIENTS,
        ),
    )
    seconds, limit = max(waits, key=lambda pair: pair[0])
    if seconds > 0:
        return Wait(seconds, limit), promised
    spacing = limits.spacing
    if spacing:
        if promised is None:
            promised = max(lane.next_slot, now)
            lane.next_slot = promised + spacing
        if promised - now > EARLY_GRANT:
            return Wait(promised - now, PacingLimit.MESSAGES), promised
    app.leases[ask.ticket] = Lease(ask.ticket, ask.lane, now, ask.expires, ask.size, ask.recipients)
    return Grant(ask.lane, ask.key, now, ask.recipients, ask.size, ask.ticket), None


def _never(limits: PacingLimits, recipients: int, size: int) -> Never | None:
    if limits.recipients and recipients > limits.recipients:
        return Never(
            PacingLimit.RECIPIENTS,
            f"{recipients} recipients exceed the limit of {limits.recipients} per "
            f"{limits.recipients_window / 3600:g} hours per mailbox",
        )
    if limits.upload_bytes and size > limits.upload_bytes:
        return Never(
            PacingLimit.UPLOAD_BYTES,
            f"a {size}-byte request exceeds the upload budget of {limits.upload_bytes} "
            f"bytes per {limits.upload_window / 60:g} minutes",
        )
    return None


def add_request(
    app: AppState, grant: Grant, lane: LaneState, *, now: float, expires: float
) -> Wait | None:
    """One more HTTP request for a granted message (the retry after a 401); its lease is
    extended to `expires`. None when it may go."""
    held = sum(h.requests for h in app.live(now) if h.lane == grant.lane)
    seconds = lane.requests.wait(now, 1, held)
    if seconds > 0:
        return Wait(seconds, PacingLimit.REQUESTS)
    lease = app.leases.get(grant.ticket)
    if lease is not None:  # else it lapsed, and was counted as answered then
        app.leases[grant.ticket] = replace(
            lease, requests=lease.requests + 1, expires=max(lease.expires, expires)
        )
    return None


def release(app: AppState, lane: LaneState, ticket: str, *, sent: bool, now: float) -> None:
    """The requests of lease `ticket` were answered at `now` (or failed then). `sent=False`
    gives its recipients back to the daily budget: Graph refused the message, so Exchange does
    not count them."""
    lease = app.leases.pop(ticket, None)
    if lease is not None:  # else it lapsed and was counted as answered at its expiry
        _settle(lane, lease, now, sent=sent)


def _settle(lane: LaneState, lease: Lease, at: float, *, sent: bool) -> None:
    lane.sent.settle(at, 1)
    lane.requests.settle(at, lease.requests)
    lane.upload.settle(at, lease.size)
    if sent:
        lane.recipients.settle(at, lease.recipients)


def lapse(app: AppState, lane_name: str, lane: LaneState, now: float) -> None:
    """Leases of `lane_name` never handed back (their relay died) count as answered at their
    expiry, the latest their requests can have arrived; any lease lapsed for a day is forgotten."""
    for ticket, lease in list(app.leases.items()):
        if lease.expires > now:
            continue
        if lease.lane == lane_name:
            _settle(lane, lease, lease.expires, sent=True)
            del app.leases[ticket]
        elif lease.expires < now - IDLE_LANE_SECONDS:
            del app.leases[ticket]


def block(lane: LaneState, seconds: float, *, now: float) -> None:
    """Graph said Retry-After: nothing goes on this lane for `seconds`.

    The promises made before are void (their slots fall inside the pause; the caller forgets
    them); the messages holding them are given new slots after it, in the order they come back.
    """
    lane.blocked_until = max(lane.blocked_until, now + max(seconds, 0.0))
    lane.next_slot = max(lane.next_slot, lane.blocked_until)


# --- in this process ---------------------------------------------------------------------------


class Pacer:
    """The lanes of one relay, kept in this process: per sending mailbox, plus the app's leases.

    Mutable, but owned: the Graph transport creates one and is its only user (no global state).
    Lane keys are mailbox addresses as the transport normalises them; message keys identify one
    queue entry across its deferrals (message id and variant).
    """

    def __init__(self, limits: PacingLimits) -> None:
        self.limits = limits
        self.app = AppState()
        self._lanes: dict[str, LaneState] = {}
        self._promises: dict[str, dict[str, float]] = {}
        self._tickets = itertools.count(1)
        self._last_sweep = -math.inf

    def _lane(self, name: str) -> LaneState:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = LaneState.new(self.limits)
        return lane

    def acquire(
        self,
        lane_name: str,
        key: str,
        *,
        recipients: int,
        size: int,
        now: float,
        expires: float = math.inf,
    ) -> Decision:
        """`admit` on this process's state; a grant's lease lapses at `expires`."""
        self._sweep(now)
        promises = self._promises.setdefault(lane_name, {})
        ask = Ask(
            lane_name,
            key,
            recipients,
            size,
            str(next(self._tickets)),
            expires,
            promises.get(key),
        )
        decision, promised = admit(self.app, self._lane(lane_name), ask, self.limits, now)
        if promised is None:
            promises.pop(key, None)
        else:
            promises[key] = promised
        return decision

    def request(self, grant: Grant, *, now: float, expires: float = math.inf) -> Wait | None:
        return add_request(self.app, grant, self._lane(grant.lane), now=now, expires=expires)

    def release(self, grant: Grant, *, sent: bool, now: float) -> None:
        release(self.app, self._lane(grant.lane), grant.ticket, sent=sent, now=now)

    def block(self, lane_name: str, seconds: float, *, now: float) -> None:
        block(self._lane(lane_name), seconds, now=now)
        self._promises.pop(lane_name, None)

    def _sweep(self, now: float) -> None:
        """Forget lanes that have nothing left to remember (bounded memory, at most once a
        minute). Promises older than a day belong to entries that never came back."""
        if now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        busy = {lease.lane for lease in self.app.leases.values()}
        for name in list(self._lanes):
            promises = self._promises.get(name, {})
            for key, slot in list(promises.items()):
                if slot < now - IDLE_LANE_SECONDS:
                    del promises[key]
            if not promises and name not in busy and self._lanes[name].idle(now):
                del self._lanes[name]
                self._promises.pop(name, None)

    def lanes(self) -> int:
        return len(self._lanes)
