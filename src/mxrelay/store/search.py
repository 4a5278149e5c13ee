"""Searching the message log with Mailpit's search syntax: what the API, the UI and the CLI call.

The syntax is read by `search_terms.py` (pure: query text to typed terms), compiled to indexed SQL
conditions by `search_sql.py`, and run by `listing.py` (pages, summaries, counts). A query is
bounded (`MAX_QUERY_LENGTH` characters, `MAX_TERMS` terms) before any of it reaches the database,
and every value in it is a bound parameter.
"""

from __future__ import annotations

from datetime import UTC, tzinfo

from sqlalchemy.engine import Connection

from mxrelay.store.backend import Database
from mxrelay.store.listing import (
    Counts,
    MessageSummary,
    Page,
    count_matching,
    indexed_for,
    list_page,
    newest_matching,
    page_ids,
    summaries,
)
from mxrelay.store.search_terms import (
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    Filter,
    SearchQuery,
    Term,
    parse_search,
)

__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "Counts",
    "Filter",
    "MessageSummary",
    "Page",
    "SearchQuery",
    "Term",
    "count_messages",
    "latest_matching",
    "list_page",
    "parse_search",
    "search_messages",
]


async def latest_matching(db: Database, query_text: str, zone: tzinfo = UTC) -> str | None:
    """The id of the newest message `query_text` matches (every message when it is blank), or
    None: Mailpit's `GET /api/v1/message/latest?query=`."""
    return await newest_matching(db, parse_search(query_text.strip(), zone))


async def search_messages(
    db: Database, query: SearchQuery, *, limit: int = 50, offset: int = 0
) -> list[MessageSummary]:
    """A page of the messages `query` matches, newest first, without the counts (which are
    not read: counting a broad search reads every match). Like every reader of the search
    index, it first waits until every message committed is in it."""

    def run(conn: Connection) -> list[MessageSummary]:
        return summaries(conn, page_ids(conn, query, start=offset, limit=limit))

    await indexed_for(db, query)
    return await db.read(run)


async def count_messages(db: Database, query: SearchQuery) -> int:
    """How many messages `query` matches (every message: from the kept counts, not a scan)."""
    return (await count_matching(db, query)).total
