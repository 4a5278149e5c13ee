"""mxrelay's queue routes: `GET /api/v1/mxrelay/queue` (the summary) and
`POST /api/v1/mxrelay/message/{ID}/{retry|hold|resume|cancel}` (an operator's actions on one
message's queue entries, every variant), and `POST /api/v1/mxrelay/messages/{action}` with
`{"IDs": [...]}` for the same on a selection (at most `SELECTION_LIMIT` messages; an empty or
missing list is refused, never taken as "all").

The actions are `mxrelay queue`'s (`store/queue/admin.py`): `retry` makes the entries due at once
(a dead one comes back with a fresh lifetime), `hold` keeps them from delivery until `resume`,
and `cancel` takes them out of the live queue (dead, reason recorded; the log keeps the message).
Each answers `{"ID", "Action", "Changed"}` (entries changed: 0 when none was in a state the
action applies to) and announces a `delivery` event; 404 for an unknown message. The summary has
the entries by state, the age of the oldest waiting one, Graph's pacing lanes where the store
keeps them (PostgreSQL), and the status conditions that fail (a configuration fault of the
delivery side shows there, as on /healthz).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.health import Health
from mxrelay.model import QueueState
from mxrelay.store.backend import Database
from mxrelay.store.bulk import stored_as_is
from mxrelay.store.changes import ChangeKind, announce
from mxrelay.store.message_log import get_message
from mxrelay.store.overview import queue_overview
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from mxrelay.store.queue.entries import QueueEntry
from mxrelay.web.api_v1.body import TooLarge, read_body
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found, rfc3339
from mxrelay.web.api_v1.gojson import STRINGS, Field, GoJsonError, decode
from mxrelay.web.api_v1.mxrelay_query import PREFIX
from mxrelay.web.audit import audit

ENTRIES_PER_MESSAGE = 1000
"""Variants one action reaches (a message has one per transform split, a handful at most)."""

SELECTION_LIMIT = 1000
"""Messages one selection action reaches; each is one bounded store call."""
BODY_LIMIT = 256 * 1024
"""Bytes of a selection's request body (1,000 ids of 26 characters, quoted, fit many times)."""
SELECTION = (Field("IDs", STRINGS),)
"""A selection's request body: `{"IDs": [...]}`, read as the Mailpit routes read theirs."""

ACTIONS: dict[str, Callable[[QueueAdmin, list[QueueEntry], float], Awaitable[int]]] = {
    "retry": lambda admin, entries, now: admin.retry(entries, now),
    "hold": lambda admin, entries, now: admin.hold(entries, now, reason="held through the API"),
    "resume": lambda admin, entries, now: admin.release(entries, now),
    "cancel": lambda admin, entries, now: admin.delete(entries, now),
}


class QueueResource:
    def __init__(
        self, context: ApiContext, health: Health | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.context = context
        self.health = health
        self.clock = clock

    async def summary(self, request: Request) -> Response:
        try:
            database = self.context.store()
        except NoStore:
            return not_found()
        overview = await queue_overview(database)
        now = self.clock()
        oldest = overview.oldest_created_at
        faults = self.health.failing() if self.health is not None else {}
        body: dict[str, Any] = {
            "States": {state.value: overview.counts.get(state, 0) for state in QueueState},
            "OldestAge": None if oldest is None else round(max(now - oldest, 0.0), 3),
            "Lanes": [
                {"Lane": lane.lane, "State": lane.state, "Updated": rfc3339(lane.updated_at)}
                for lane in overview.lanes
            ],
            "Faults": [{"Condition": name, "Detail": detail} for name, detail in faults.items()],
        }
        return JSONResponse(body)

    async def act(self, request: Request) -> Response:
        action = str(request.path_params["action"])
        operate = ACTIONS.get(action)
        try:
            database = self.context.store()
        except NoStore:
            return not_found()
        ident = str(request.path_params["id"])
        if operate is None or await get_message(database, ident) is None:
            return not_found()
        changed = await self._operate(database, ident, operate)
        result = {"ID": ident, "Action": action, "Changed": changed}
        if changed:
            await announce(database, ChangeKind.DELIVERY, result)
        await audit(request, action=action, target=ident, count=changed)
        return JSONResponse(result)

    async def act_many(self, request: Request) -> Response:
        action = str(request.path_params["action"])
        operate = ACTIONS.get(action)
        try:
            database = self.context.store()
        except NoStore:
            return not_found()
        if operate is None:
            return not_found()
        try:
            ids = decode(await read_body(request, BODY_LIMIT), SELECTION).texts("IDs")
        except TooLarge as exc:
            return PlainTextResponse(str(exc), status_code=413)
        except GoJsonError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        if not ids:
            return PlainTextResponse("no IDs given", status_code=400)
        if len(ids) > SELECTION_LIMIT:
            return PlainTextResponse(f"at most {SELECTION_LIMIT} IDs at once", status_code=400)
        results: list[dict[str, Any]] = []
        total = 0
        for ident in dict.fromkeys(ids):
            changed = await self._operate(database, ident, operate)
            result = {"ID": ident, "Action": action, "Changed": changed}
            if changed:
                await announce(database, ChangeKind.DELIVERY, result)
            results.append(result)
            total += changed
        await audit(request, action=action, target=list(dict.fromkeys(ids)), count=total)
        return JSONResponse({"Action": action, "Changed": total, "Messages": results})

    async def _operate(
        self,
        database: Database,
        ident: str,
        operate: Callable[[QueueAdmin, list[QueueEntry], float], Awaitable[int]],
    ) -> int:
        if not stored_as_is(ident):  # a NUL from the request: no message's id
            return 0
        admin = QueueAdmin(database)
        now = self.clock()
        rows = await admin.list_entries(
            QueueFilter(message_ids=(ident,)), now=now, limit=ENTRIES_PER_MESSAGE
        )
        return await operate(admin, [row.entry for row in rows], now) if rows else 0


def routes(context: ApiContext, health: Health | None) -> list[BaseRoute]:
    resource = QueueResource(context, health)
    return [
        Route(f"{PREFIX}/queue", resource.summary),
        Route(f"{PREFIX}/message/{{id}}/{{action}}", resource.act, methods=["POST"]),
        Route(f"{PREFIX}/messages/{{action}}", resource.act_many, methods=["POST"]),
    ]
