"""One render shared by the pages that ask for the same part after the same event.

Every open page learns of a change from the same broadcast of the event socket and asks for its
list again at once: ten open pages would read and render the same table ten times. A render
started after the hub's latest broadcast shows everything that broadcast announced, so a page
asking after it is answered with that render (or joins it while it runs), for at most `max_age`
seconds; a page that polls instead of listening gets a render at most that old. Without an event
hub (`told` answers None) nothing is shared. The renders are kept per key (the part and what it
depends on), the `size` most recent ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_AGE = 1.0
"""Seconds a render is shared at most."""
SIZE = 16
"""Renders kept (one per list page and search being watched)."""


@dataclass(frozen=True, slots=True)
class _Render(Generic[T]):
    started: float
    task: asyncio.Future[T]

    def failed(self) -> bool:
        return self.task.done() and (self.task.cancelled() or self.task.exception() is not None)


class SharedRenders(Generic[T]):
    def __init__(
        self,
        told: Callable[[], float | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = MAX_AGE,
        size: int = SIZE,
    ) -> None:
        self.told = told
        """When the event hub last broadcast (on `clock`), None without a hub."""
        self.clock = clock
        self.max_age = max_age
        self.size = size
        self._renders: OrderedDict[Hashable, _Render[T]] = OrderedDict()

    def _current(self, key: Hashable, now: float) -> _Render[T] | None:
        """The render of `key` a page may be answered with now, if there is one."""
        told, render = self.told(), self._renders.get(key)
        if render is None or told is None or render.started <= told or render.failed():
            return None
        return render if now - render.started <= self.max_age else None

    def done(self, key: Hashable) -> T | None:
        """The finished render of `key` a page may be answered with now, if there is one."""
        render = self._current(key, self.clock())
        return render.task.result() if render is not None and render.task.done() else None

    async def get(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """`make()`'s result for `key`: a render started since the last broadcast and at most
        `max_age` old, or a new one."""
        now = self.clock()
        render = self._current(key, now)
        if render is None:
            render = _Render(now, asyncio.ensure_future(make()))
            self._renders[key] = render
            while len(self._renders) > self.size:
                self._renders.popitem(last=False)
        self._renders.move_to_end(key)
        # A page that goes away does not cancel the render the others wait for.
        return await asyncio.shield(render.task)
