"""The queue at a glance: entries by state and Graph's shared pacing lanes, most recent first and
bounded, on both dialects."""

from __future__ import annotations

from collections.abc import Callable

from mxrelay.model import QueueState
from mxrelay.store.backend import Database
from mxrelay.store.lanes import LaneRows, LaneStore, LaneWrite
from mxrelay.store.overview import queue_overview
from tests.store.helpers import accept, record


def state(text: str) -> Callable[[LaneRows], LaneWrite[None]]:
    def change(rows: LaneRows) -> LaneWrite[None]:
        return LaneWrite(None, app='{"leases": []}', lane=text)

    return change


async def test_counts_and_lanes(db: Database) -> None:
    await accept(db, record(), record(hold_reason="held"))
    lanes = LaneStore(db)
    await lanes.update("a@example.org", None, 100.0, state('{"sent": 1}'))
    await lanes.update("b@example.org", None, 200.0, state("not json"))
    overview = await queue_overview(db)
    assert overview.counts[QueueState.QUEUED] == 1
    assert overview.counts[QueueState.HELD] == 1
    assert overview.oldest_created_at is not None
    assert {lane.lane: lane.state for lane in overview.lanes} == {
        "": {"leases": []},
        "a@example.org": {"sent": 1},
        "b@example.org": None,  # a state that is not JSON is shown as none
    }
    updated = [lane.updated_at for lane in overview.lanes]
    assert updated == sorted(updated, reverse=True)
    assert len((await queue_overview(db, lane_limit=1)).lanes) == 1
