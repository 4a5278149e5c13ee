"""The queue page: entries by state, how long the oldest has waited, the entries waiting longest,
and Graph's pacing lanes (each sending mailbox's recent sends and any Retry-After pause).

The lanes are in the store only when replicas share a PostgreSQL queue; with SQLite each relay
paces in its own process and the page says so. A configuration fault shows in the banner of
every page, this one included.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.model import QueueState
from mxrelay.store.backend import Dialect
from mxrelay.store.console import lane_views
from mxrelay.store.lanes import LaneStore
from mxrelay.store.queue import Queue
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.render import is_fragment, page

WAITING = (QueueState.QUEUED, QueueState.ACTIVE, QueueState.DEFERRED, QueueState.HELD)
LISTED = 25
"""Entries the page lists (the longest waiting)."""


class QueuePage:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def show(self, request: Request) -> Response:
        database = self.context.db()
        if database is None:
            return page(self.context, request, "queue.html", section="queue", no_store=True)
        now = self.context.clock()
        stats = await Queue(database).stats()
        waiting = await QueueAdmin(database).list_entries(
            QueueFilter(states=WAITING), now=now, limit=LISTED
        )
        shared = database.dialect is Dialect.POSTGRESQL
        lanes = lane_views(await LaneStore(database).states()) if shared else []
        counts = [(state.value, stats.counts.get(state, 0)) for state in QueueState]
        template = "_queue_panel.html" if is_fragment(request, "queue") else "queue.html"
        return page(
            self.context,
            request,
            template,
            section="queue",
            no_store=False,
            counts=counts,
            oldest=stats.oldest_created_at,
            waiting=waiting,
            lanes=lanes,
            shared_lanes=shared,
        )


def routes(context: ConsoleContext) -> list[BaseRoute]:
    return [Route("/queue", QueuePage(context).show)]
