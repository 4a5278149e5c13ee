"""Rates that keep one noisy client from costing the relay CPU or log volume (a leaf: SMTP AUTH
and the web's Basic authentication share it).

`FailureBudget`: failed logins per client address, a token bucket each, in bounded memory.
`ThrottledLog`: an event logged at most once per interval, the rest counted into the next line.
Both take their clock; neither starts a task or a timer.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from mxrelay import log

TRACKED_CLIENTS = 10_000
"""Client addresses a `FailureBudget` remembers; the least recently seen are forgotten first."""

SHOWN_CLIENTS = 8
"""Distinct clients a `ThrottledLog` line names among those it stood for."""


def client_key(host: str) -> str:
    """The address a budget is kept for: IPv4 as it is, IPv6 by its /64 (one host's share)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureBudget:
    """`limit` failures per `period` seconds per client: a bucket of `limit` tokens, refilled
    continuously, one taken per failure. An empty bucket means "refuse before checking". A try
    being checked (`checking`) counts as spent until it ends: each may yet fail, so a client's
    concurrent tries cannot overdraw its budget."""

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        capacity: int = TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.rate = limit / period
        self.capacity = capacity
        self.clock = clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        self._checking: collections.Counter[str] = collections.Counter()
        """Tries being checked, per client (`client_key`); only clients with some are kept."""

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.limit), now))
        return min(float(self.limit), tokens + (now - stamp) * self.rate)

    def allows(self, host: str) -> bool:
        """May this client try once more, its tries still being checked counted as spent?"""
        key = client_key(host)
        under_way = self._checking[key]
        if key not in self._buckets:
            return under_way < self.limit
        return self._tokens(key, self.clock()) - under_way >= 1

    @contextlib.contextmanager
    def checking(self, host: str) -> Iterator[None]:
        """Around the check of one try of this client: it counts against `allows` until done."""
        key = client_key(host)
        self._checking[key] += 1
        try:
            yield
        finally:
            self._checking[key] -= 1
            if not self._checking[key]:
                del self._checking[key]

    def failed(self, host: str) -> None:
        """Take one token for a failure of this client."""
        key, now = client_key(host), self.clock()
        self._buckets[key] = (max(0.0, self._tokens(key, now) - 1), now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)


class ThrottledLog:
    """Log `name` at most once per `interval` seconds. Events in between are counted, and the
    next line carries `suppressed` (how many) and `suppressed_clients` (a few of them), so a flood
    of one event costs a line per interval; the metrics still count every event."""

    def __init__(
        self,
        logger: logging.Logger,
        name: str,
        level: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.name = name
        self.level = level
        self.interval = interval
        self.clock = clock
        self._next = float("-inf")
        self._suppressed = 0
        self._clients: dict[str, None] = {}

    def event(self, client: str, **fields: Any) -> None:
        now = self.clock()
        if now < self._next:
            self._suppressed += 1
            if len(self._clients) < SHOWN_CLIENTS:
                self._clients[client] = None
            return
        if self._suppressed:
            fields["suppressed"] = self._suppressed
            fields["suppressed_clients"] = list(self._clients)
        log.event(self.logger, self.name, self.level, client=client, **fields)
        self._next = now + self.interval
        self._suppressed = 0
        self._clients = {}
