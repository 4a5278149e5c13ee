"""Waiting for a condition: one bounded poll, for plain code (`eventually`) and coroutines (`until`).

A test that waits for what another thread, task or process does (a message arriving, a state in
the database, a port opening, a metric moving) polls for that condition here rather than sleeping
a fixed time: the wait ends as soon as the condition holds, a machine under load only makes it
longer, and a condition that never holds fails the test after a generous bound with a message
naming it. A wait on an event the code under test sets (an `asyncio.Event`, a `Condition`) needs
no polling; a sleep that is the behaviour under test (a slow client) is not a wait either.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

WITHIN = 10.0
"""Default bound in seconds: far above what any condition takes on an idle machine."""
INTERVAL = 0.02
"""Default seconds between two looks."""

Description = str | Callable[[], str]
"""What is awaited, for the failure message; a callable is asked at the time of failure (so
that it can say what it saw last)."""


def eventually(
    condition: Callable[[], T | None],
    *,
    what: Description | None = None,
    within: float = WITHIN,
    interval: float = INTERVAL,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """The first true value `condition()` returns, looking every `interval` seconds; fails the
    test after `within` seconds. Exceptions of the `ignoring` kinds count as "not yet"."""
    deadline = time.monotonic() + within
    last: Exception | None = None
    while True:
        try:
            value = condition()
        except ignoring as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(condition, what, within)) from last
        time.sleep(interval)  # the poll itself, bounded by the deadline


@overload
async def until(
    condition: Callable[[], Awaitable[T | None]],
    *,
    what: Description | None = None,
    within: float = WITHIN,
    interval: float = INTERVAL,
    ignoring: tuple[type[Exception], ...] = (),
) -> T: ...


@overload
async def until(
    condition: Callable[[], T | None],
    *,
    what: Description | None = None,
    within: float = WITHIN,
    interval: float = INTERVAL,
    ignoring: tuple[type[Exception], ...] = (),
) -> T: ...


async def until(
    condition: Callable[[], object],
    *,
    what: Description | None = None,
    within: float = WITHIN,
    interval: float = INTERVAL,
    ignoring: tuple[type[Exception], ...] = (),
) -> object:
    """`eventually` for a coroutine: the condition may be a coroutine function too (a query of
    the store); one that hangs is cancelled at the bound."""
    last: Exception | None = None
    bound = asyncio.timeout(within)
    try:
        async with bound:
            while True:
                try:
                    value = condition()
                    if inspect.isawaitable(value):
                        value = await value
                except ignoring as exc:
                    last = exc
                else:
                    if value:
                        return value
                await asyncio.sleep(interval)
    except TimeoutError:
        if not bound.expired():
            raise
        raise AssertionError(_failure(condition, what, within)) from last


def _failure(condition: Callable[[], object], what: Description | None, within: float) -> str:
    described = what() if callable(what) else what
    return f"not true within {within:g} s: {described or _source(condition)}"


def _source(condition: Callable[[], object]) -> str:
    """The condition as written (a lambda's text), or its name."""
    name = str(getattr(condition, "__qualname__", repr(condition)))
    try:
        text = " ".join(inspect.getsource(condition).split())
    except (OSError, TypeError):
        return name
    found = re.search(r"\blambda\s*:", text)
    if found is None:
        return name
    depth = 0
    for end in range(found.end(), len(text)):  # the lambda ends at an unmatched bracket or comma
        if text[end] in "([{":
            depth += 1
        elif text[end] in ")]}" or (text[end] == "," and depth == 0):
            if depth == 0:
                return text[found.start() : end].strip()
            depth -= 1
    return text[found.start() :].strip()
