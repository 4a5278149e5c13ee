"""The pacing lanes (`store/lanes.py`) as the queue page shows them, read defensively."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mxrelay.store.console.common import json_object


@dataclass(frozen=True, slots=True)
class LaneView:
    """A sending mailbox's pacing as the queue page shows it."""

    lane: str
    blocked_until: float | None
    """When a Retry-After pause ends (None: none was set)."""
    next_slot: float | None
    recent: dict[str, int]
    """Events counted in each rate window (messages sent, requests, bytes, recipients)."""
    in_flight: int


def lane_views(states: dict[str, str]) -> list[LaneView]:
    """The pacing lanes' stored states (`lanes.LaneStore.states()`), read defensively: the
    encoding is the delivery side's, and a state this reader does not understand shows as empty."""
    app = json_object(states.get("", ""))
    in_flight: dict[str, int] = {}
    for lease in app.get("leases", ()) if isinstance(app.get("leases"), list) else ():
        if isinstance(lease, list) and len(lease) > 1 and isinstance(lease[1], str):
            in_flight[lease[1]] = in_flight.get(lease[1], 0) + 1
    views = []
    for lane, text in sorted(states.items()):
        if not lane:
            continue
        data = json_object(text)
        recent = {}
        for name in ("sent", "requests", "upload", "recipients"):
            window = data.get(name)
            if isinstance(window, list) and len(window) == 2 and isinstance(window[1], list):
                recent[name] = int(sum(w for w in window[1] if isinstance(w, int | float)))
        views.append(
            LaneView(
                lane,
                _number(data.get("blocked_until")),
                _number(data.get("next_slot")),
                recent,
                in_flight.get(lane, 0),
            )
        )
    return views


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
