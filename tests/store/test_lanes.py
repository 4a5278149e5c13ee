"""The lanes tables on SQLite and PostgreSQL: one change is one locked transaction, promises
follow their messages, concurrent changes from two stores never lose one another, idle rows go."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from mxrelay.store.backend import Database
from mxrelay.store.lanes import APP_LANE, FORGET_AFTER, LaneRows, LaneStore, LaneWrite
from mxrelay.store.open import OpenMode, open_store

NOW = 1_800_000_000.0


def bump(rows: LaneRows) -> LaneWrite[int]:
    """Count changes in both rows (a read-modify-write that a lost update would show)."""
    app = json.loads(rows.app or '{"n": 0}')
    lane = json.loads(rows.lane or '{"n": 0}')
    app["n"] += 1
    lane["n"] += 1
    return LaneWrite(lane["n"], json.dumps(app), json.dumps(lane))


Change = Callable[[LaneRows], LaneWrite[float | None]]


@pytest.fixture
async def other(db: Database, database_url: str) -> AsyncIterator[Database]:
    """A second handle on the same store, as another replica (or process) would have."""
    async with open_store(database_url, OpenMode.QUEUE) as second:
        yield second


async def test_a_change_reads_and_writes_the_app_row_and_its_lane(db: Database) -> None:
    lanes = LaneStore(db)
    seen: list[LaneRows] = []

    def first(rows: LaneRows) -> LaneWrite[str]:
        seen.append(rows)
        return LaneWrite("ok", '{"app":1}', '{"lane":1}')

    assert await lanes.update("a@example.net", "m1", NOW, first) == "ok"
    assert seen == [LaneRows("", "", None)]  # new rows read as empty
    assert await lanes.states() == {APP_LANE: '{"app":1}', "a@example.net": '{"lane":1}'}

    def second(rows: LaneRows) -> LaneWrite[None]:
        seen.append(rows)
        return LaneWrite(None, rows.app, rows.lane)

    await lanes.update("a@example.net", None, NOW + 1, second)
    assert seen[-1] == LaneRows('{"app":1}', '{"lane":1}', None)


async def test_promises_are_kept_by_lane_and_message_and_voided_with_the_lane(
    db: Database,
) -> None:
    lanes = LaneStore(db)

    def promise(slot: float | None, *, void: bool = False) -> Change:
        def change(rows: LaneRows) -> LaneWrite[float | None]:
            return LaneWrite(rows.promise, rows.app, rows.lane, slot, void_promises=void)

        return change

    assert await lanes.update("a", "m1", NOW, promise(NOW + 2)) is None
    assert await lanes.update("a", "m2", NOW, promise(NOW + 4)) is None
    assert await lanes.update("b", "m1", NOW, promise(None)) is None
    assert await lanes.update("a", "m1", NOW, promise(None)) == NOW + 2
    assert await lanes.update("a", "m1", NOW, promise(None)) is None
    assert await lanes.update("a", None, NOW, promise(None, void=True)) is None
    assert await lanes.update("a", "m2", NOW, promise(None)) is None


async def test_concurrent_changes_from_two_stores_are_never_lost(
    db: Database, other: Database
) -> None:
    replicas = [LaneStore(db), LaneStore(other)]
    results = await asyncio.gather(
        *(replicas[i % 2].update("a@example.net", None, NOW, bump) for i in range(40))
    )
    assert sorted(results) == list(range(1, 41))  # each change saw the one before it
    states = await replicas[0].states()
    assert json.loads(states[APP_LANE]) == {"n": 40}
    assert json.loads(states["a@example.net"]) == {"n": 40}


async def test_idle_lanes_and_forgotten_promises_are_swept(db: Database) -> None:
    lanes = LaneStore(db)

    def keep(slot: float | None) -> Change:
        def change(rows: LaneRows) -> LaneWrite[float | None]:
            return LaneWrite(rows.promise, '{"app":1}', '{"lane":1}', slot)

        return change

    await lanes.update("old", "m1", NOW, keep(NOW))
    later = NOW + FORGET_AFTER + 1
    await lanes.update("new", "m2", later, keep(later))
    assert set(await lanes.states()) == {APP_LANE, "new"}
    assert await lanes.update("old", "m1", later, keep(None)) is None


async def test_the_app_row_is_not_a_lane(db: Database) -> None:
    with pytest.raises(ValueError, match="mailbox"):
        await LaneStore(db).update(APP_LANE, None, NOW, bump)
