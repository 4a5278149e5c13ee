"""The message list: newest first, searchable, paged by key, refreshed in place.

`/` is the page; the same URL asked by htmx for `#messages` answers the table alone, which is how
a new message appears, or a state changes, without a reload (the page's script asks on each
event of the relay's event socket, or every few seconds without one). Paging is by key
(`store.console.PageKey`), never by offset, so an old page costs what the first one does. The
search is the API's (`store.search.parse_search`) and lives in the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mxrelay.mime.addresses import split_list
from mxrelay.store.console import ListedMessage, MessagePage, PageKey, log_version, message_page
from mxrelay.store.search import SearchQuery, count_messages, parse_search
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.render import is_fragment, page, render, respond

QUERY_LIMIT = 1000
"""Characters of a search the list takes (the rest is cut)."""

PAGE_SIZE = 50
TRANSFORM_LABELS = {"ics:strip": "calendar stripped", "ics:attach": "calendar as attachment"}
"""The badge of each transform (`mime.pipeline.transform_name`, `-deep` aside)."""


def transform_labels(transforms: tuple[str, ...]) -> tuple[str, ...]:
    labels = (TRANSFORM_LABELS.get(t.removesuffix("-deep"), t) for t in transforms)
    return tuple(dict.fromkeys(labels))


@dataclass(frozen=True, slots=True)
class Row:
    message: ListedMessage
    href: str
    sender: str
    to: str
    transforms: tuple[str, ...]


def _first(addresses: str, fallback: str) -> str:
    found = split_list(addresses[:4096])
    return found[0] if found else fallback


def _recipients(addresses: str) -> str:
    found = split_list(addresses[:4096])
    shown = ", ".join(found[:3])
    return f"{shown} +{len(found) - 3}" if len(found) > 3 else shown


class Messages:
    def __init__(self, context: ConsoleContext) -> None:
        self.context = context

    async def count(self, request: Request) -> Response:
        """How many messages match, asked by the page after it is shown: a count of a broad
        search reads every match, which the list itself never has to."""
        query = request.query_params.get("q", "").strip()[:QUERY_LIMIT]
        database = self.context.db()
        total = 0
        if database is not None:
            total = await count_messages(database, parse_search(query) if query else SearchQuery())
        return page(self.context, request, "_count.html", total=total, query=query)

    async def index(self, request: Request) -> Response:
        if request.query_params.get("fragment") == "count":
            return await self.count(request)
        query = request.query_params.get("q", "").strip()[:QUERY_LIMIT]
        token = request.query_params.get("page", "")
        key = PageKey.parse(token) if token else None
        database = self.context.db()
        values: dict[str, Any] = {"query": query, "query_limit": QUERY_LIMIT}
        if database is None:
            return page(self.context, request, "messages.html", section="messages", no_store=True)
        refresh = is_fragment(request, "messages")
        search = parse_search(query) if query else SearchQuery()
        since = request.query_params.get("since") if refresh else None
        shared_key = (query, token, self.context.operator(request))
        drawn = self.context.shared.done(shared_key) if refresh else None
        if drawn is not None:  # drawn since the change this page was told of
            return self.unchanged() if drawn[0] == since else respond(drawn[1])
        if since is not None and since == await log_version(database):
            return self.unchanged()
        if not refresh:
            found = await message_page(database, search, key=key, limit=PAGE_SIZE)
            values.update(self.table(found, query, token, key))
            return page(self.context, request, "messages.html", section="messages", **values)

        async def table() -> tuple[str, str]:
            assert database is not None
            found = await message_page(database, search, key=key, limit=PAGE_SIZE)
            values.update(self.table(found, query, token, key))
            html = render(self.context, request, "_messages_table.html", **values)
            return found.version, html

        # The pages told of the same change ask at once: one of them reads and renders.
        version, html = await self.context.shared.get(shared_key, table)
        return self.unchanged() if version == since else respond(html)

    @staticmethod
    def unchanged() -> Response:
        """Nothing arrived and nothing changed since the table was drawn: htmx keeps it."""
        return Response(status_code=204, headers={"cache-control": "no-store"})

    def table(
        self, found: MessagePage, query: str, token: str, key: PageKey | None
    ) -> dict[str, Any]:
        """What the table's template shows of a page."""
        base = self.context.webroot

        def url(**params: str) -> str:
            kept = {k: v for k, v in (("q", query), *params.items()) if v}
            return base + ("?" + urlencode(kept) if kept else "")

        listed = url(page=token if key else "").removeprefix(base)
        suffix = "?" + urlencode({"back": listed}) if listed else ""
        rows = [
            Row(
                message=m,
                href=f"{base}message/{m.id}{suffix}",
                sender=_first(m.header_from, m.mail_from or "<>"),
                to=_recipients(m.header_to),
                transforms=transform_labels(m.transforms),
            )
            for m in found.messages
        ]
        return {
            "rows": rows,
            "page_key": key,
            "total": found.total,
            "count_url": url(fragment="count") if key is None else None,
            "next_url": url(page=found.next_key.token()) if found.next_key else None,
            "first_url": url(),
            "fragment_url": url(page=token if key else "", since=found.version),
            "no_store": False,
        }


def routes(context: ConsoleContext) -> list[BaseRoute]:
    resource = Messages(context)
    return [Route("/", resource.index)]
