"""The summary page: accepted messages, refused recipients, delivered and failed attempts over
the last hour (5-minute bars) and the last day (hourly bars)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.store.console import Series, activity
from mxrelay.web.console.charts import Chart, bar_chart
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.render import is_fragment, page

SPANS = (("hour", "Last hour", 300.0, 12), ("day", "Last 24 hours", 3600.0, 24))
SERIES = (
    ("accepted", "Accepted messages"),
    ("refused", "Refused recipients"),
    ("delivered", "Delivered attempts"),
    ("failed", "Failed attempts"),
)


def charts(series: Series) -> dict[str, Chart]:
    labels = [
        datetime.fromtimestamp(series.start + i * series.width, UTC).strftime("%H:%M")
        for i in range(len(series.accepted))
    ]
    return {name: bar_chart(getattr(series, name), labels) for name, _ in SERIES}


class Summary:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def show(self, request: Request) -> Response:
        database = self.context.db()
        spans = []
        if database is not None:
            now = self.context.clock()
            for key, title, width, buckets in SPANS:
                # Buckets end at the next boundary of their width, so bars do not slide.
                end = (now // width + 1) * width
                found = await activity(database, end=end, width=width, buckets=buckets)
                spans.append((key, title, charts(found)))
        template = "_summary_panel.html" if is_fragment(request, "summary") else "summary.html"
        return page(
            self.context,
            request,
            template,
            section="summary",
            spans=spans,
            series=SERIES,
            no_store=database is None,
        )


def routes(context: ConsoleContext) -> list[BaseRoute]:
    return [Route("/summary", Summary(context).show)]
