"""The message log at scale: Mailpit's list and search calls against a store of N messages, beside
Mailpit's own approach on the same data, on SQLite and on PostgreSQL.

A generator (`corpus` and `message`, deterministic from a seed) makes N realistic messages: application mail
from a few hundred senders to tens of thousands of recipients in hundreds of domains, subjects from
templates, bodies of Zipf-distributed words, some Cc, blind recipients, attachments, `X-Tags`,
refused recipients; most delivered, some failed, deferred, queued or held; most read. They are
written with the store's own ingest writer (`message_log.insert_messages`: every row, index and
count the relay writes), in bulk transactions, not through SMTP. Beside them, the same data is
written the way Mailpit keeps it (`mailpit_mailbox`: a JSON `Metadata` column and a lower-cased
`SearchText` of headers and body, an index on `Created`; `mailpit_data`: the compressed bytes).

Measured, each `runs` times after a warm-up, p50 and p95 in milliseconds:

- mxrelay: the API itself (`/api/v1` in process, through httpx's ASGI transport, JSON included):
  the first page of `/messages`, a deep page (`start=N/2`, and the same page through `before`),
  `/search` for a word (found in about 1 % of messages), for `addressed:` a domain, for
  `status:failed`; one message (`/message/{ID}`) and its source (`/raw`).
- Mailpit's approach, on the same data: the page by `ORDER BY Created DESC LIMIT/OFFSET` with
  `COUNT(*)` of all and of unread messages on every listing; a search as `LIKE '%term%'` over
  `SearchText` (addresses: over `Metadata`) reading every match, counted, then sliced, and a
  second query for the unread matches (its `SearchUnreadCount`); `status:failed` (which Mailpit
  lacks) as a filter on the recipients without an index on their state; one message as its bytes
  read, decompressed and parsed; the source as its bytes decompressed.

The ratio is Mailpit's p50 over mxrelay's. Targets: first page p95 at most 20 ms, searches p95 at
most 100 ms on SQLite, searches at least 10 times faster than Mailpit's approach.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import os
import random
import sqlite3
import statistics
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
    update,
)
from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from ulid import ULID

from mxrelay.model import Peer, Reason, RefusedRecipient, Reply, SessionInfo, Transaction
from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.bulk import insert_many
from mxrelay.store.fields import AddressLists, searchable
from mxrelay.store.ingest import NewMessage, Summary, compress_body
from mxrelay.store.message_log import insert_messages
from mxrelay.store.open import open_store
from mxrelay.store.search_terms import clean
from mxrelay.store.tags import header_tags
from mxrelay.store.variants import VariantPlan
from mxrelay.web.api_v1 import api_routes

PAGE = 50
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
TARGET_FIRST_PAGE_MS = 20.0
TARGET_SEARCH_MS = 100.0
TARGET_SEARCH_RATIO = 10.0
SEARCHES = ("search: a word", "search: addressed: an address", "search: status:failed")


@dataclass(frozen=True)
class Plan:
    messages: int = 1_000_000
    runs: int = 20
    baseline_runs: int = 10
    batch: int = 2000
    seed: int = 12
    backends: tuple[str, ...] = ("sqlite", "postgresql")


# --- the corpus ---------------------------------------------------------------------------------

FIRST = [
    "Alex",
    "Sam",
    "Jo",
    "Robin",
    "Kim",
    "Lee",
    "Max",
    "Noa",
    "Ari",
    "Eli",
    "Mia",
    "Ben",
    "Zoe",
    "Leo",
    "Ava",
    "Ian",
    "Ivy",
    "Tom",
    "Eva",
    "Dan",
    "Amy",
    "Ray",
    "Uma",
    "Ned",
    "Liv",
    "Kai",
    "Ida",
    "Oli",
    "Tia",
    "Gus",
]
LAST = [
    "Smith",
    "Jones",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Lopez",
    "Wilson",
    "Moore",
    "Taylor",
    "Lee",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Carter",
    "Mitchell",
    "Perez",
    "Roberts",
    "Turner",
    "Phillips",
    "Evans",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "pe",
    "da",
    "fi",
    "go",
    "hu",
    "je",
    "ba",
    "ze",
    "ro",
    "na",
    "li",
    "mu",
]
SUBJECTS = (
    "Invoice {n} from {company}",
    "Your order {n} has shipped",
    "Password reset for {first}",
    "Weekly report {n}",
    "Reminder: {w1} {w2} on {day}",
    "Welcome to {company}, {first}",
    "{w1} {w2} {w3}",
    "Re: {w1} {w2}",
    "Booking confirmed: {w1} {n}",
    "Alert: {w1} {w2} threshold",
)
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
TAGS = ("billing", "alerts", "Newsletter", "support", "urgent")
STATES = (
    ("delivered", 0.94),
    ("failed", 0.03),
    ("deferred", 0.015),
    ("queued", 0.01),
    ("held", 0.005),
)


@dataclass(frozen=True)
class Corpus:
    """The populations messages are drawn from, and the values the searches look for."""

    words: tuple[str, ...]
    word_weights: tuple[float, ...]
    domains: tuple[str, ...]
    domain_weights: tuple[float, ...]
    senders: tuple[tuple[str, str], ...]

    @property
    def search_word(self) -> str:
        """A word of the body vocabulary in about 1 % of messages (Zipf rank 700)."""
        return self.words[700]

    @property
    def search_domain(self) -> str:
        """A domain of senders and recipients, in about 2 % of messages."""
        return self.domains[40]

    @property
    def search_address(self) -> str:
        """A recipient in a handful of messages: what a test suite looks its mail up by."""
        return f"alex.smith1@{self.domains[0]}"


def _zipf(count: int, exponent: float) -> tuple[float, ...]:
    weights = [1 / (rank**exponent) for rank in range(1, count + 1)]
    running = 0.0
    cumulative = []
    for weight in weights:
        running += weight
        cumulative.append(running)
    return tuple(cumulative)


def corpus(seed: int) -> Corpus:
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < 20_000:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    domains = tuple(f"{rng.choice(words)}-{n:03d}.example" for n in range(800))
    senders = tuple(
        (f"{rng.choice(words).title()} {kind}", f"{kind.lower()}@{domains[n % 50]}")
        for n, kind in enumerate(("Billing", "Support", "Alerts", "Team", "Notify") * 60)
    )
    return Corpus(tuple(words), _zipf(len(words), 1.07), domains, _zipf(len(domains), 1.0), senders)


@dataclass
class Generated:
    """What the measurements need to know of the corpus."""

    ids: list[str] = field(default_factory=list)
    """Every 1000th message id (for one-message and raw lookups)."""
    middle: float = 0.0
    """The received time of the message at position N/2 from the newest."""


def _person(rng: random.Random, c: Corpus) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choices(c.domains, cum_weights=c.domain_weights)[0]
    address = f"{first.lower()}.{last.lower()}{rng.randint(1, 60)}@{domain}"
    return (f"{first} {last}" if rng.random() < 0.6 else "", address)


def _header(mailboxes: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{name} <{address}>" if name else address for name, address in mailboxes)


def message(rng: random.Random, c: Corpus, position: int, count: int) -> NewMessage:
    """The message at `position` (0 the oldest), with its rows as ingest computes them."""
    received = (
        START + SPAN * (position / max(count, 1)) + timedelta(microseconds=rng.randint(0, 999))
    )
    sender = rng.choice(c.senders)
    to = [_person(rng, c) for _ in range(1 if rng.random() < 0.85 else rng.randint(2, 3))]
    cc = [_person(rng, c)] if rng.random() < 0.08 else []
    blind = [_person(rng, c)[1]] if rng.random() < 0.03 else []
    words = rng.choices(c.words, cum_weights=c.word_weights, k=rng.randint(40, 150))
    first = to[0][0].split(" ")[0] or "there"
    subject = rng.choice(SUBJECTS).format(
        n=rng.randint(1000, 99999),
        company=sender[1].split("@")[1].split("-")[0].title(),
        first=first,
        day=rng.choice(DAYS),
        w1=words[0],
        w2=words[1],
        w3=words[2],
    )
    body = " ".join(words)
    tag = rng.choice(TAGS) if rng.random() < 0.03 else ""
    attached = rng.random() < 0.1
    milliseconds = int(received.timestamp() * 1000)
    ident = str(ULID.from_bytes(milliseconds.to_bytes(6, "big") + rng.randbytes(10)))
    lines = [
        f"From: {_header([sender])}",
        f"To: {_header(to)}",
        *([f"Cc: {_header(cc)}"] if cc else []),
        f"Subject: {subject}",
        f"Message-ID: <{ident.lower()}@{sender[1].split('@')[1]}>",
        f"Date: {received.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        *([f"X-Tags: {tag}"] if tag else []),
        "MIME-Version: 1.0",
    ]
    if attached:
        boundary = f"b{position}"
        blob = rng.randbytes(rng.randint(1024, 4096)).hex()
        lines += [
            f'Content-Type: multipart/mixed; boundary="{boundary}"',
            "",
            f"--{boundary}",
            "Content-Type: text/plain; charset=utf-8",
            "",
            body,
            f"--{boundary}",
            "Content-Type: application/octet-stream",
            "Content-Disposition: attachment; filename=report.bin",
            "",
            blob,
            f"--{boundary}--",
        ]
    else:
        lines += ["Content-Type: text/plain; charset=utf-8", "", body]
    raw = ("\r\n".join(lines) + "\r\n").encode()
    envelope = tuple([address for _, address in to + cc] + blind)
    refused = (
        (
            RefusedRecipient(
                f"nobody@{rng.choice(c.words)}.invalid", Reply(550, "1.2", "no"), Reason.NXDOMAIN
            ),
        )
        if rng.random() < 0.01
        else ()
    )
    transaction = Transaction(
        session=SessionInfo(
            Peer("10.1.2.3", 40000 + position % 20000), helo="app.example", esmtp=True
        ),
        mail_from=f"bounce@{sender[1].split('@')[1]}",
        recipients=envelope,
        data=raw,
        received_at=received,
        refused=refused,
    )
    digest = hashlib.sha256(raw).hexdigest()
    summary = Summary(
        subject=subject,
        header_from=sender[1],
        header_to=", ".join(address for _, address in to),
        message_id=f"{ident.lower()}@{sender[1].split('@')[1]}",
        snippet=body[:250],
        body_text=body,
        attachments=1 if attached else 0,
        addresses=AddressLists(sender, tuple(to), tuple(cc)),
        tags=tuple(header_tags(tag)) if tag else (),
        attachment_names=("report.bin",) if attached else (),
    )
    received_header = f"Received: from app.example by relay.example; {received:%d %b %Y}\r\n"
    return NewMessage(
        id=ident,
        received_at=received.timestamp(),
        transaction=transaction,
        size=len(raw),
        sha256=digest,
        compressed=compress_body(raw),
        encoding="zlib",
        summary=summary,
        received_header=received_header,
        variants=(VariantPlan(0, envelope),),
        variant_sizes=((0, len(raw) + len(received_header), digest),),
    )


# --- Mailpit's tables ---------------------------------------------------------------------------

mailpit = MetaData()
mailpit_mailbox = Table(
    "mailpit_mailbox",
    mailpit,
    Column("created", BigInteger, nullable=False, index=True),
    Column("id", String(26), nullable=False, unique=True),
    Column("message_id", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("metadata", Text),
    Column("size", Integer, nullable=False),
    Column("inline", Integer, nullable=False),
    Column("attachments", Integer, nullable=False),
    Column("read", Integer, index=True),
    Column("snippet", Text, nullable=False),
    Column("search_text", Text),
)
mailpit_data = Table(
    "mailpit_data",
    mailpit,
    Column("id", String(26), nullable=False, unique=True),
    Column("email", LargeBinary),
)


def _metadata(lists: AddressLists) -> str:
    def boxes(items: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"Name": n, "Address": a} for n, a in items]

    body: dict[str, Any] = {"From": {"Name": lists.sender[0], "Address": lists.sender[1]}}
    for key, items in (("To", lists.to), ("Cc", lists.cc), ("Bcc", lists.bcc)):
        if items:
            body[key] = boxes(items)
    return json.dumps(body)


def mailpit_rows(item: NewMessage, read: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    s = item.summary
    lists = AddressLists(
        s.addresses.sender,
        s.addresses.to,
        s.addresses.cc,
        tuple(
            ("", a)
            for a in item.transaction.recipients
            if a not in {x for _, x in (*s.addresses.to, *s.addresses.cc)}
        ),
    )
    search = clean(
        " ".join(
            (
                searchable([lists.sender]),
                s.subject,
                searchable(lists.to),
                searchable(lists.cc),
                searchable(lists.bcc),
                s.body_text,
                *s.attachment_names,
            )
        )
    )
    return (
        {
            "created": int(item.received_at * 1000),
            "id": item.id,
            "message_id": s.message_id,
            "subject": s.subject,
            "metadata": _metadata(lists),
            "size": item.size,
            "inline": 0,
            "attachments": s.attachments,
            "read": 1 if read else 0,
            "snippet": s.snippet,
            "search_text": search,
        },
        {"id": item.id, "email": item.compressed},
    )


# --- filling a store ----------------------------------------------------------------------------

_STATE_OUTCOME = {
    "delivered": ("delivered", 250),
    "failed": ("failed", 550),
    "deferred": ("deferred", 451),
}
_QUEUE_STATE = {
    "delivered": "delivered",
    "failed": "dead",
    "deferred": "deferred",
    "queued": "queued",
    "held": "held",
}


def write_batch(
    conn: Connection, items: Sequence[NewMessage], states: Sequence[str], read: Sequence[bool]
) -> None:
    """The rows ingest and delivery would have written for these messages, and Mailpit's."""
    insert_messages(conn, items)
    queue_rows, attempt_rows = [], []
    for item, state in zip(items, states, strict=True):
        queue_rows.append(
            {
                "message_id": item.id,
                "variant": 0,
                "state": _QUEUE_STATE[state],
                "created_at": item.received_at,
                "queued_at": item.received_at,
                "next_attempt_at": item.received_at + 60,
                "attempts": 1 if state in _STATE_OUTCOME else 0,
                "updated_at": item.received_at + 1,
            }
        )
        if state in _STATE_OUTCOME:
            outcome, code = _STATE_OUTCOME[state]
            attempt_rows.append(
                {
                    "message_id": item.id,
                    "variant": 0,
                    "attempt": 1,
                    "started_at": item.received_at + 0.5,
                    "duration": 0.3,
                    "transport": "graph" if zlib.crc32(item.id.encode()) % 10 < 7 else "smtp",
                    "owner": "bench",
                    "outcome": outcome,
                    "code": code,
                    "recipients": "[]",
                }
            )
    insert_many(conn, schema.queue, queue_rows)
    insert_many(conn, schema.attempts, attempt_rows)
    r, m = schema.recipients, schema.messages
    for state in ("delivered", "failed", "deferred", "held"):
        ids = [item.id for item, s in zip(items, states, strict=True) if s == state]
        if ids:
            conn.execute(update(r).where(r.c.message_id.in_(ids)).values(state=state))
    seen = [item.id for item, flag in zip(items, read, strict=True) if flag]
    if seen:
        conn.execute(update(m).where(m.c.id.in_(seen)).values(seen=True))
    rows = [mailpit_rows(item, flag) for item, flag in zip(items, read, strict=True)]
    insert_many(conn, mailpit_mailbox, [row for row, _ in rows])
    insert_many(conn, mailpit_data, [data for _, data in rows])


async def fill(db: Database, plan: Plan, c: Corpus, say: Callable[[str], None]) -> Generated:
    await db.write(lambda conn: mailpit.create_all(conn))
    rng = random.Random(plan.seed)
    generated = Generated()
    started = time.monotonic()
    for first in range(0, plan.messages, plan.batch):
        positions = range(first, min(first + plan.batch, plan.messages))
        items = [message(rng, c, p, plan.messages) for p in positions]
        weights = [w for _, w in STATES]
        states = rng.choices([s for s, _ in STATES], weights=weights, k=len(items))
        read = [rng.random() < 0.6 for _ in items]
        await db.write(write_batch, items, states, read, durable=False)
        generated.ids += [item.id for n, item in enumerate(items) if (first + n) % 1000 == 0]
        middle = plan.messages - plan.messages // 2
        for p, item in zip(positions, items, strict=True):
            if p == middle:
                generated.middle = item.received_at
        if (first // plan.batch) % 50 == 0 and first:
            rate = first / (time.monotonic() - started)
            say(f"  {first:,} messages written, {rate:,.0f}/s")
    if db.dialect.value == "postgresql":
        await db.write(lambda conn: conn.execute(text("ANALYZE")))  # what autovacuum would do
    elif db.target.path is not None:
        # The log as the relay's regular checkpoints keep it, not as a bulk load leaves it.
        with contextlib.closing(sqlite3.connect(db.target.path)) as checkpoint:
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return generated


# --- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    label: str
    ours: tuple[float, ...]
    baseline: tuple[float, ...]
    matches: int = -1


def percentile(samples: Sequence[float], share: float) -> float:
    ordered = sorted(samples)
    index = max(0, math.ceil(share * len(ordered)) - 1)
    return ordered[index]


async def timed(work: Callable[[], Awaitable[object]], runs: int) -> tuple[float, ...]:
    await work()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - started) * 1000)
    return tuple(samples)


class Baseline:
    """Mailpit's queries (internal/storage/messages.go, search.go) on its tables."""

    COLUMNS = "created, id, message_id, subject, metadata, size, attachments, read, snippet"

    def __init__(self, db: Database) -> None:
        self.db = db

    def _summaries(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        return [
            {
                "ID": row[1],
                "MessageID": row[2],
                "Read": row[7] == 1,
                **json.loads(row[4]),
                "Subject": row[3],
                "Created": datetime.fromtimestamp(row[0] / 1000, UTC).isoformat(),
                "Tags": [],
                "Size": row[5],
                "Attachments": row[6],
                "Snippet": row[8],
            }
            for row in rows
        ]

    def _stats(self, conn: Connection) -> tuple[int, int]:
        total = conn.execute(text("SELECT COUNT(*) FROM mailpit_mailbox")).scalar_one()
        unread = conn.execute(
            text("SELECT COUNT(*) FROM mailpit_mailbox WHERE read = 0")
        ).scalar_one()
        return int(total), int(unread)

    async def page(self, start: int, before: float | None = None) -> str:
        def run(conn: Connection) -> str:
            where = "WHERE created < :before " if before is not None else ""
            rows = conn.execute(
                text(
                    f"SELECT {self.COLUMNS} FROM mailpit_mailbox {where}"
                    "ORDER BY created DESC LIMIT :limit OFFSET :start"
                ),
                {"limit": PAGE, "start": start, "before": int((before or 0) * 1000)},
            ).all()
            total, unread = self._stats(conn)
            return json.dumps({"total": total, "unread": unread, "messages": self._summaries(rows)})

        return await self.db.read(run)

    async def search(self, column: str, term: str, where: str | None = None) -> str:
        condition = where or f"{column} LIKE :like"

        def run(conn: Connection) -> str:
            params = {"like": f"%{term}%"}
            rows = conn.execute(
                text(
                    f"SELECT {self.COLUMNS} FROM mailpit_mailbox m WHERE {condition} "
                    "ORDER BY created DESC"
                ),
                params,
            ).all()
            unread = len(
                conn.execute(
                    text(f"SELECT id FROM mailpit_mailbox m WHERE {condition} AND read = 0"),
                    params,
                ).all()
            )
            total, all_unread = self._stats(conn)
            page = self._summaries(rows[:PAGE])
            return json.dumps(
                {
                    "total": total,
                    "unread": all_unread,
                    "messages_count": len(rows),
                    "messages_unread": unread,
                    "messages": page,
                }
            )

        return await self.db.read(run)

    async def raw(self, ident: str) -> bytes:
        def run(conn: Connection) -> bytes:
            blob = conn.execute(
                text("SELECT email FROM mailpit_data WHERE id = :id"), {"id": ident}
            ).scalar_one()
            return zlib.decompress(blob)

        return await self.db.read(run)

    async def message(self, ident: str) -> str:
        data = await self.raw(ident)
        parsed = BytesParser(policy=policy.default).parsebytes(data)
        body = parsed.get_body(preferencelist=("plain", "html"))
        return json.dumps(
            {
                "ID": ident,
                "Subject": str(parsed["subject"]),
                "From": str(parsed["from"]),
                "To": str(parsed["to"]),
                "Text": body.get_content() if body is not None else "",
            }
        )


async def measure(db: Database, plan: Plan, c: Corpus, generated: Generated) -> list[Measured]:
    app = Starlette(routes=api_routes(lambda: db, info_facts=dict))
    transport = httpx.ASGITransport(app=app)
    baseline = Baseline(db)
    deep = plan.messages // 2
    picks = itertools_cycle(generated.ids)
    results: list[Measured] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def get(path: str, **params: Any) -> httpx.Response:
            answer = await client.get(path, params=params)
            answer.raise_for_status()
            return answer

        async def matches(query: str) -> int:
            return int((await get("/api/v1/search", query=query)).json()["messages_count"])

        before = int(generated.middle * 1000)
        status_where = (
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'failed')"
        )
        cases: list[
            tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[object]], str]
        ] = [
            ("list: first page", lambda: get("/api/v1/messages"), lambda: baseline.page(0), ""),
            (
                f"list: deep page, start={deep:,}",
                lambda: get("/api/v1/messages", start=deep),
                lambda: baseline.page(deep),
                "",
            ),
            (
                "list: the same page by before",
                lambda: get("/api/v1/messages", before=before),
                lambda: baseline.page(0, before=generated.middle),
                "",
            ),
            (
                SEARCHES[0],
                lambda: get("/api/v1/search", query=c.search_word),
                lambda: baseline.search("search_text", c.search_word),
                c.search_word,
            ),
            (
                SEARCHES[1],
                lambda: get("/api/v1/search", query=f"addressed:{c.search_address}"),
                lambda: baseline.search("metadata", c.search_address),
                f"addressed:{c.search_address}",
            ),
            (
                "search: addressed: a domain",
                lambda: get("/api/v1/search", query=f"addressed:{c.search_domain}"),
                lambda: baseline.search("metadata", c.search_domain),
                f"addressed:{c.search_domain}",
            ),
            (
                SEARCHES[2],
                lambda: get("/api/v1/search", query="status:failed"),
                lambda: baseline.search("", "", status_where),
                "status:failed",
            ),
            (
                "one message",
                lambda: get(f"/api/v1/message/{next(picks)}"),
                lambda: baseline.message(next(picks)),
                "",
            ),
            (
                "raw",
                lambda: get(f"/api/v1/message/{next(picks)}/raw"),
                lambda: baseline.raw(next(picks)),
                "",
            ),
        ]
        for label, ours, theirs, query in cases:
            found = await matches(query) if query else -1
            results.append(
                Measured(
                    label,
                    await timed(ours, plan.runs),
                    await timed(theirs, plan.baseline_runs),
                    found,
                )
            )
    return results


def itertools_cycle(items: Sequence[str]) -> Iterator[str]:
    while True:
        yield from items


def report(backend: str, plan: Plan, results: Sequence[Measured]) -> str:
    lines = [
        f"message log, {backend}, {plan.messages:,} messages: p50/p95 in ms over {plan.runs} runs "
        f"(Mailpit's approach: {plan.baseline_runs} runs); ratio = Mailpit's p50 / mxrelay's p50",
        f"{'operation':38} {'matches':>9} {'p50':>8} {'p95':>8} {'Mailpit p50':>12} {'p95':>9} {'ratio':>8}",
    ]
    for r in results:
        ours50, ours95 = statistics.median(r.ours), percentile(r.ours, 0.95)
        theirs50, theirs95 = statistics.median(r.baseline), percentile(r.baseline, 0.95)
        matches = f"{r.matches:,}" if r.matches >= 0 else ""
        lines.append(
            f"{r.label:38} {matches:>9} {ours50:8.1f} {ours95:8.1f} {theirs50:12.1f} {theirs95:9.1f} "
            f"{theirs50 / ours50:8.1f}"
        )
    verdicts = [_verdicts(backend, results)] if backend == "sqlite" else []
    return "\n".join(lines + [v for v in verdicts if v])


def _verdicts(backend: str, results: Sequence[Measured]) -> str:
    by_label = {r.label: r for r in results}
    checks = [
        (
            f"first page p95 <= {TARGET_FIRST_PAGE_MS:.0f} ms",
            percentile(by_label["list: first page"].ours, 0.95) <= TARGET_FIRST_PAGE_MS,
        )
    ]
    for label in SEARCHES:
        r = by_label[label]
        checks.append(
            (
                f"{label} p95 <= {TARGET_SEARCH_MS:.0f} ms",
                percentile(r.ours, 0.95) <= TARGET_SEARCH_MS,
            )
        )
        ratio = statistics.median(r.baseline) / statistics.median(r.ours)
        checks.append(
            (
                f"{label} >= {TARGET_SEARCH_RATIO:.0f}x Mailpit's approach",
                ratio >= TARGET_SEARCH_RATIO,
            )
        )
    return "targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks)


# --- stores -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def store(backend: str, kept: Path | None = None) -> AsyncIterator[Database]:
    """A store to fill: SQLite in a temporary directory (or the file `kept`, left afterwards for
    another run to measure again without filling), PostgreSQL in a throw-away cluster."""
    if backend == "sqlite":
        if kept is not None:
            async with open_store(f"sqlite:///{kept}") as db:
                yield db
            return
        with tempfile.TemporaryDirectory(prefix="mxrelay-bench-log-") as directory:
            async with open_store(f"sqlite:///{Path(directory) / 'log.db'}") as db:
                yield db
        return
    from tests.support.postgres import PostgresServer

    server = PostgresServer()
    try:
        server.start()
        server.sql("CREATE DATABASE bench")
        async with open_store(server.url("bench")) as db:
            yield db
    finally:
        server.close()


KEEP = "MXRELAY_BENCH_LOG_STORE"
"""For working on the benchmark: a SQLite file that is filled once and measured again by later
runs (read by the benchmark only, never by the relay)."""


async def bench_backend(
    backend: str, plan: Plan, say: Callable[[str], None], kept: Path | None = None
) -> str:
    c = corpus(plan.seed)
    async with store(backend, kept) as db:
        started = time.monotonic()
        if kept is not None and await _count(db) == plan.messages:
            generated = await _recall(db, plan)
            say(f"  {backend}: {plan.messages:,} messages kept in {kept}")
        else:
            generated = await fill(db, plan, c, say)
            elapsed = time.monotonic() - started
            say(f"  {backend}: {plan.messages:,} messages written in {elapsed:.0f} s")
        results = await measure(db, plan, c, generated)
    return report(backend, plan, results)


async def _count(db: Database) -> int:
    return int(
        await db.read(lambda conn: conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one())
    )


async def _recall(db: Database, plan: Plan) -> Generated:
    """What `fill` noted, read back from a kept store."""

    def read(conn: Connection) -> Generated:
        ids = list(conn.execute(text("SELECT id FROM messages ORDER BY id")).scalars())
        middle = conn.execute(
            text("SELECT received_at FROM messages WHERE id = :id"),
            {"id": ids[plan.messages - plan.messages // 2]},
        ).scalar_one()
        return Generated(ids[::1000], float(middle))

    return await db.read(read)


def run(plan: Plan = Plan(), environ: Mapping[str, str] = os.environ) -> None:
    kept = Path(environ[KEEP]) if environ.get(KEEP) else None
    for backend in plan.backends:
        say = functools.partial(print, flush=True)
        keep = kept if backend == "sqlite" else None
        print(asyncio.run(bench_backend(backend, plan, say, keep)), flush=True)
        print(flush=True)
