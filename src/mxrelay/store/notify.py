"""Wake-ups for the event poller on PostgreSQL: a `LISTEN` on the channel the store notifies.

The migration's trigger sends `NOTIFY mxrelay_events` from every transaction that inserts a
recipient, an attempt, a refusal or an announced change, whichever process or replica commits it;
PostgreSQL delivers it at commit. `Wakeups.wait(within)` returns as soon as one arrives, so a
poller on PostgreSQL reads when there is something to read rather than on a timer. The listening
connection is the wake-up's own (a pooled connection cannot hold a `LISTEN`); when it is lost,
`wait` sleeps its time out (the poller still polls) and connects again at most every
`RECONNECT_INTERVAL`. On SQLite there is nothing to listen to: `wait` only sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from mxrelay.log import event
from mxrelay.store.backend import Database, Dialect

CHANNEL = "mxrelay_events"
"""The channel of the migration's trigger (`v0005_events.py`)."""

RECONNECT_INTERVAL = 5.0
CONNECT_TIMEOUT = 5.0

logger = logging.getLogger(__name__)


class Wakeups:
    """Notifications of new rows; `await aclose()` when done."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._dsn: str | None = None
        if db.dialect is Dialect.POSTGRESQL:
            url = db.target.url.set(drivername="postgresql")
            self._dsn = url.render_as_string(hide_password=False)
        self._clock = clock
        self._connection: Any = None
        self._tried_at = float("-inf")
        self._woken = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def wait(self, within: float) -> bool:
        """Wait for a notification, at most `within` seconds; whether one came."""
        await self._connect()
        try:
            await asyncio.wait_for(self._woken.wait(), within)
        except TimeoutError:
            return False
        self._woken.clear()
        return True

    async def _connect(self) -> None:
        if self._dsn is None or self.listening:
            return
        now = self._clock()
        if now - self._tried_at < RECONNECT_INTERVAL:
            return
        self._tried_at = now
        await self._drop()
        try:
            connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
            await connection.add_listener(CHANNEL, self._notified)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            event(logger, "events.listen_failed", logging.WARNING, error=type(exc).__name__)
            return
        connection.add_termination_listener(lambda _: self._woken.set())
        self._connection = connection
        self._woken.set()  # rows may have come while nobody listened: read once now

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._woken.set()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT)

    async def aclose(self) -> None:
        await self._drop()
