"""The list's shared render: pages asking after the same broadcast share one read and render
(joining it while it runs); a new broadcast, age, a failure or the lack of an event hub mean a
new one."""

from __future__ import annotations

import asyncio

import pytest

from mxrelay.web.console.shared import SharedRenders


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_pages_after_one_broadcast_share_a_render() -> None:
    clock, told = Clock(), [99.0]
    shared: SharedRenders[int] = SharedRenders(lambda: told[0], clock=clock, max_age=1.0)
    made: list[int] = []
    gate = asyncio.Event()

    async def make() -> int:
        made.append(len(made))
        await gate.wait()
        return len(made)

    waiting = [asyncio.ensure_future(shared.get("list", make)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 10  # joined while it ran
    assert await shared.get("list", make) == 1  # and taken when done
    assert shared.done("list") == 1
    assert shared.done("unknown") is None
    assert await shared.get("other", make) == 2  # another part: its own
    told[0] = 100.5  # a broadcast after the render started: read again
    clock.now = 100.6
    assert await shared.get("list", make) == 3
    clock.now = 101.7  # too old, broadcast or not
    assert shared.done("list") is None
    assert await shared.get("list", make) == 4
    assert len(made) == 4


async def test_a_failed_render_is_not_shared_and_nothing_is_without_a_hub() -> None:
    clock = Clock()
    shared: SharedRenders[int] = SharedRenders(lambda: 0.0, clock=clock)
    calls = [0]

    async def failing() -> int:
        calls[0] += 1
        raise RuntimeError("store gone")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await shared.get("list", failing)
    assert calls == [2]
    alone: SharedRenders[int] = SharedRenders(lambda: None, clock=clock)

    async def make() -> int:
        calls[0] += 1
        return calls[0]

    assert [await alone.get("list", make) for _ in range(2)] == [3, 4]


async def test_a_page_that_goes_away_does_not_cancel_the_others_render() -> None:
    shared: SharedRenders[str] = SharedRenders(lambda: 0.0)
    gate = asyncio.Event()

    async def make() -> str:
        await gate.wait()
        return "table"

    first = asyncio.ensure_future(shared.get("list", make))
    second = asyncio.ensure_future(shared.get("list", make))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == "table"
