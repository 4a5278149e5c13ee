"""Small reads the operator's console needs beside the message log's and the search's own.

Each function answers one panel of a page in one read transaction, bounded by its arguments:
the delivery states and transforms of the messages on a page, the queue entries of one message,
the recipients refused in the same SMTP transaction, the refusal log and its per-domain counts,
the counts per time bucket behind the summary charts, and the pacing lanes as the queue page
shows them. Listing and searching stay `search.py`'s; this module only adds keyset paging on top
of its public query (`message_page`), so a deep page costs what the first one does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Float, and_, cast, func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.search import MessageSummary, SearchQuery, search_messages

PAGE_LIMIT = 200
"""Rows one page of a list may ask for."""

IN_LIST_LIMIT = 500
"""Message ids one statement reads at once (bounded IN lists)."""

TRANSACTION_WINDOW = 3600.0
"""Seconds before a message's arrival in which a refusal on the same connection counts as part
of its transaction (a connection is not kept open longer than this in practice)."""


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
    """`query` narrowed to [after, before); None when nothing can match."""
    lows = [x for x in (after, query.after) if x is not None]
    highs = [x for x in (before, query.before) if x is not None]
    low = max(lows) if lows else None
    high = min(highs) if highs else None
    if low is not None and high is not None and low >= high:
        return None
    return replace(query, after=low, before=high)


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
            tuple(_json_strings(transforms)),
        )
    return facts


# --- one message ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryView:
    """A queue entry of one message: a variant's place in the queue."""

    variant: int
    state: str
    attempts: int
    next_attempt_at: float
    hold_reason: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class VariantView:
    variant: int
    transforms: tuple[str, ...]
    report: tuple[str, ...]
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class RefusalView:
    refused_at: float
    client_address: str
    helo: str
    mail_from: str
    recipient: str
    code: int
    enhanced: str
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class MessageExtras:
    """What the message page shows beside `message_log.MessageView`."""

    entries: tuple[EntryView, ...]
    variants: tuple[VariantView, ...]
    refused: tuple[RefusalView, ...]
    """Recipients refused on the same connection and sender just before the message came."""
    client_port: int
    esmtp: bool
    tls_cipher: str | None


async def message_extras(db: Database, message_id: str) -> MessageExtras | None:
    return await db.read(_message_extras, message_id)


def _message_extras(conn: Connection, message_id: str) -> MessageExtras | None:
    m, q, v, f = schema.messages, schema.queue, schema.variants, schema.refusals
    row = conn.execute(
        select(
            m.c.received_at,
            m.c.client_address,
            m.c.client_port,
            m.c.mail_from,
            m.c.esmtp,
            m.c.tls_cipher,
        ).where(m.c.id == message_id)
    ).first()
    if row is None:
        return None
    received_at, address, port, mail_from, esmtp, cipher = row
    entries = tuple(
        EntryView(*entry)
        for entry in conn.execute(
            select(
                q.c.variant,
                q.c.state,
                q.c.attempts,
                q.c.next_attempt_at,
                q.c.hold_reason,
                q.c.last_error,
            )
            .where(q.c.message_id == message_id)
            .order_by(q.c.variant)
        )
    )
    variants = tuple(
        VariantView(
            variant, tuple(_json_strings(transforms)), tuple(_json_strings(report)), size, digest
        )
        for variant, transforms, report, size, digest in conn.execute(
            select(v.c.variant, v.c.transforms, v.c.report, v.c.size, v.c.sha256)
            .where(v.c.message_id == message_id)
            .order_by(v.c.variant)
        )
    )
    # The refusals of this transaction: same connection and sender, after the connection's
    # previous message (if any) and before this one.
    previous = conn.execute(
        select(func.max(m.c.received_at)).where(
            m.c.client_address == address,
            m.c.client_port == port,
            m.c.received_at < received_at,
            m.c.received_at >= received_at - TRANSACTION_WINDOW,
        )
    ).scalar()
    since = received_at - TRANSACTION_WINDOW if previous is None else float(previous)
    refused = tuple(
        RefusalView(*refusal)
        for refusal in conn.execute(
            _refusal_columns()
            .where(
                f.c.client_address == address,
                f.c.client_port == port,
                f.c.mail_from == mail_from,
                f.c.refused_at > since,
                f.c.refused_at <= received_at,
            )
            .order_by(f.c.refused_at)
            .limit(PAGE_LIMIT)
        )
    )
    return MessageExtras(entries, variants, refused, int(port), bool(esmtp), cipher)


# --- refusals ------------------------------------------------------------------------------------


def _refusal_columns() -> Any:
    f = schema.refusals
    return select(
        f.c.refused_at,
        f.c.client_address,
        f.c.helo,
        f.c.mail_from,
        f.c.recipient,
        f.c.code,
        f.c.enhanced,
        f.c.text,
        f.c.reason,
    )


@dataclass(frozen=True, slots=True)
class RefusalPage:
    refusals: tuple[RefusalView, ...]
    next_before: tuple[float, int] | None
    """(refused_at, id) of the last row, where the next page starts; None on the last page."""


async def refusal_page(
    db: Database,
    *,
    contains: str | None = None,
    before: tuple[float, int] | None = None,
    limit: int = 50,
) -> RefusalPage:
    """Refusals newest first, optionally whose recipient contains `contains`, keyset-paged on
    (time, id)."""
    limit = max(1, min(limit, PAGE_LIMIT))
    return await db.read(_refusal_page, contains, before, limit)


def _refusal_page(
    conn: Connection, contains: str | None, before: tuple[float, int] | None, limit: int
) -> RefusalPage:
    f = schema.refusals
    statement = _refusal_columns().add_columns(f.c.id)
    if contains:
        statement = statement.where(
            func.lower(f.c.recipient).contains(contains.lower()[:512], autoescape=True)
        )
    if before is not None:
        at, row_id = before
        statement = statement.where(
            (f.c.refused_at < at) | and_(f.c.refused_at == at, f.c.id < row_id)
        )
    rows = conn.execute(
        statement.order_by(f.c.refused_at.desc(), f.c.id.desc()).limit(limit + 1)
    ).all()
    shown = rows[:limit]
    refusals = tuple(RefusalView(*row[:-1]) for row in shown)
    after = (float(shown[-1][0]), int(shown[-1][-1])) if len(rows) > limit else None
    return RefusalPage(refusals, after)


@dataclass(frozen=True, slots=True)
class DomainCount:
    domain: str
    refusals: int
    reasons: tuple[tuple[str, int], ...]


async def refusals_by_domain(db: Database, *, since: float, limit: int = 50) -> list[DomainCount]:
    """Recipient domains refused since `since`, most refused first, with their reasons."""
    return await db.read(_refusals_by_domain, since, max(1, min(limit, PAGE_LIMIT)))


DOMAIN_SCAN_LIMIT = 100_000
"""Refusals read for the per-domain counts (the newest ones, if the day had more)."""


def _refusals_by_domain(conn: Connection, since: float, limit: int) -> list[DomainCount]:
    f = schema.refusals
    counts: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(f.c.recipient, f.c.reason)
        .where(f.c.refused_at >= since)
        .order_by(f.c.refused_at.desc())
        .limit(DOMAIN_SCAN_LIMIT)
    )
    for recipient, reason in rows:
        domain = str(recipient).rpartition("@")[2].lower().strip("<>") or "(none)"
        by_reason = counts.setdefault(domain, {})
        by_reason[reason] = by_reason.get(reason, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return [
        DomainCount(
            domain,
            sum(reasons.values()),
            tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for domain, reasons in ranked[:limit]
    ]


# --- the summary charts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """Counts in `buckets` equal spans ending at `end` (oldest first)."""

    start: float
    width: float
    accepted: tuple[int, ...]
    refused: tuple[int, ...]
    delivered: tuple[int, ...]
    failed: tuple[int, ...]


async def activity(db: Database, *, end: float, width: float, buckets: int) -> Series:
    """Accepted messages, refused recipients, delivered and failed attempts per bucket."""
    buckets = max(1, min(buckets, 288))
    return await db.read(_activity, end - width * buckets, width, buckets)


def _activity(conn: Connection, start: float, width: float, buckets: int) -> Series:
    m, f, a = schema.messages, schema.refusals, schema.attempts

    def counts(column: Any, *where: Any) -> tuple[int, ...]:
        slot = cast(func.floor((column - start) / width), Float)
        out = [0] * buckets
        statement = (
            select(slot, func.count())
            .where(column >= start, column < start + width * buckets, *where)
            .group_by(slot)
        )
        for index, n in conn.execute(statement):
            if index is not None and 0 <= int(index) < buckets:
                out[int(index)] = int(n)
        return tuple(out)

    return Series(
        start,
        width,
        counts(m.c.received_at),
        counts(f.c.refused_at),
        counts(a.c.started_at, a.c.outcome.in_(("delivered", "partial"))),
        counts(a.c.started_at, a.c.outcome == "failed"),
    )


# --- pacing lanes --------------------------------------------------------------------------------


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
    app = _json_object(states.get("", ""))
    in_flight: dict[str, int] = {}
    for lease in app.get("leases", ()) if isinstance(app.get("leases"), list) else ():
        if isinstance(lease, list) and len(lease) > 1 and isinstance(lease[1], str):
            in_flight[lease[1]] = in_flight.get(lease[1], 0) + 1
    views = []
    for lane, text in sorted(states.items()):
        if not lane:
            continue
        data = _json_object(text)
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


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_strings(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [str(item) for item in value] if isinstance(value, list) else []
