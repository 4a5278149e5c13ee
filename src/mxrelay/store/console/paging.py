"""Keyset paging over the search's public query, and what the list shows of each message beyond
its summary (recipient states, transforms), one read per page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.console.common import PAGE_LIMIT, json_strings
from mxrelay.store.search import MessageSummary, SearchQuery, search_messages
from mxrelay.store.search_terms import Filter, Term


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where the next page starts: after `skip` messages received exactly at `received_at`
    (the ones already shown), then older ones. Exact on ties, and an index range scan however
    deep the page."""

    received_at: float
    skip: int

    def token(self) -> str:
        return f"{self.received_at!r}_{self.skip}"

    @classmethod
    def parse(cls, token: str) -> PageKey | None:
        """The key a `token()` wrote, or None for anything else (a page link is user input)."""
        stamp, _, skip = token[:64].partition("_")
        try:
            received_at, count = float(stamp), int(skip)
        except ValueError:
            return None
        if not math.isfinite(received_at) or not 0 <= count <= 1_000_000:
            return None
        return cls(received_at, count)


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: tuple[MessageSummary, ...]
    next_key: PageKey | None
    """The key of the next (older) page; None on the last page."""


async def message_page(
    db: Database, query: SearchQuery, *, key: PageKey | None, limit: int
) -> MessagePage:
    """Up to `limit` messages matching `query`, newest first, starting at `key`."""
    limit = max(1, min(limit, PAGE_LIMIT))
    found: list[MessageSummary] = []
    if key is not None:
        tied = _within(query, after=key.received_at, before=math.nextafter(key.received_at, 1e300))
        if tied is not None:
            found.extend(await search_messages(db, tied, limit=limit + 1, offset=key.skip))
        older = _within(query, before=key.received_at)
        if older is not None and len(found) <= limit:
            found.extend(await search_messages(db, older, limit=limit + 1 - len(found)))
    else:
        found.extend(await search_messages(db, query, limit=limit + 1))
    shown = found[:limit]
    if len(found) <= limit:
        return MessagePage(tuple(shown), None)
    last = shown[-1].received_at
    same = sum(1 for m in shown if m.received_at == last)
    if key is not None and key.received_at == last and all(m.received_at == last for m in shown):
        same += key.skip
    return MessagePage(tuple(shown), PageKey(last, same))


def _within(
    query: SearchQuery, *, after: float | None = None, before: float | None = None
) -> SearchQuery | None:
    """`query` narrowed to [after, before) by two more terms; None when nothing can match.
    (The search's `before:` includes its bound, so the open end is the float just below.)"""
    if after is not None and before is not None and after >= before:
        return None
    terms = list(query.terms)
    if after is not None:
        terms.append(Term(Filter.AFTER, number=after))
    if before is not None:
        terms.append(Term(Filter.BEFORE, number=math.nextafter(before, -math.inf)))
    return replace(query, terms=tuple(terms))


# --- the messages of a page --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowFacts:
    """What the list shows of a message beyond its summary."""

    states: tuple[tuple[str, int], ...]
    """(delivery state, recipients in it), most recipients first."""
    transforms: tuple[str, ...]


async def row_facts(db: Database, ids: Sequence[str]) -> dict[str, RowFacts]:
    """Recipient states and transforms of the messages `ids` (a page of them)."""
    return await db.read(_row_facts, list(ids)[:PAGE_LIMIT])


def _row_facts(conn: Connection, ids: list[str]) -> dict[str, RowFacts]:
    if not ids:
        return {}
    m, r = schema.messages, schema.recipients
    states: dict[str, dict[str, int]] = {}
    counted = select(r.c.message_id, r.c.state, func.count()).where(r.c.message_id.in_(ids))
    for message_id, state, n in conn.execute(counted.group_by(r.c.message_id, r.c.state)):
        states.setdefault(message_id, {})[state] = int(n)
    facts = {}
    for message_id, transforms in conn.execute(
        select(m.c.id, m.c.transforms).where(m.c.id.in_(ids))
    ):
        by_state = states.get(message_id, {})
        facts[message_id] = RowFacts(
            tuple(sorted(by_state.items(), key=lambda item: (-item[1], item[0]))),
            tuple(json_strings(transforms)),
        )
    return facts


async def log_version(db: Database) -> str:
    """A token that changes when a message arrives, a delivery attempt is logged or an action
    changes messages in place (read, tagged, deleted, held: the change outbox): three lookups at
    the end of primary-key indexes, so a page that polls can ask cheaply whether to re-read."""
    return await db.read(_log_version)


def _log_version(conn: Connection) -> str:
    m, a, c = schema.messages, schema.attempts, schema.log_changes
    newest = conn.execute(select(func.max(m.c.id))).scalar()
    attempt = conn.execute(select(func.max(a.c.id))).scalar()
    change = conn.execute(select(func.max(c.c.id))).scalar()
    return f"{newest or ''}.{attempt or 0}.{change or 0}"
