"""The polling helpers: the first true value, a bounded wait, a failure that names the condition."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.support.polling import eventually, until


def test_eventually_returns_the_first_true_value() -> None:
    looks = itertools.count()
    assert eventually(lambda: next(looks) >= 3 and "done") == "done"
    assert next(looks) == 4


def test_eventually_fails_naming_the_condition() -> None:
    items: list[int] = []
    with pytest.raises(AssertionError, match=r"not true within 0.1 s: lambda: len\(items\) == 2$"):
        eventually(lambda: len(items) == 2, within=0.1)


def test_a_description_is_asked_when_the_wait_fails() -> None:
    seen = ["nothing"]

    def what() -> str:
        return f"two messages in the sink (saw {seen[-1]})"

    seen.append("one")
    with pytest.raises(AssertionError, match=r"0.05 s: two messages in the sink \(saw one\)"):
        eventually(lambda: False, what=what, within=0.05)


def test_ignored_exceptions_mean_not_yet_and_the_last_one_is_kept() -> None:
    def connect() -> bool:
        raise ConnectionRefusedError("nobody listens")

    with pytest.raises(AssertionError, match="port open") as raised:
        eventually(connect, what="port open", within=0.05, ignoring=(OSError,))
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    with pytest.raises(ZeroDivisionError):  # any other error fails at once
        eventually(lambda: 1 / 0, ignoring=(OSError,))


async def test_until_takes_plain_and_coroutine_conditions() -> None:
    looks = itertools.count()

    async def fifth() -> int:
        look = next(looks)
        return look if look >= 5 else 0

    assert await until(fifth) == 5
    assert await until(lambda: [1]) == [1]


async def test_until_cancels_a_condition_that_hangs_at_the_bound() -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    with pytest.raises(AssertionError, match=r"not true within 0.05 s: .*\.hangs$"):
        await until(hangs, within=0.05)


async def test_a_timeout_of_the_condition_itself_is_not_the_bound() -> None:
    async def times_out() -> bool:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        await until(times_out, within=5)
