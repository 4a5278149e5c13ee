"""The message-log benchmark's data: a generator of realistic application mail, deterministic
from a seed (`corpus`, `message`), the same messages as Mailpit keeps them (`mailpit_mailbox`,
`mailpit_data`), and a store filled with both in bulk through the store's own ingest writer
(`fill`), or found filled already (`filled`: a kept store is measured again without filling).
Measured by `message_log.py` and `console.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import sqlite3
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
from ulid import ULID

from mxrelay.model import Peer, Reason, RefusedRecipient, Reply, SessionInfo, Transaction
from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.bulk import insert_many
from mxrelay.store.fields import AddressLists, searchable
from mxrelay.store.ingest import NewMessage, Summary, compress_body
from mxrelay.store.message_log import insert_messages
from mxrelay.store.search_terms import clean
from mxrelay.store.tags import header_tags
from mxrelay.store.variants import VariantPlan

START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
"""The messages arrive evenly over thirty days."""


def words(text: str) -> tuple[str, ...]:
    """A word list written as text."""
    return tuple(text.split())


# --- the corpus ---------------------------------------------------------------------------------

FIRST = words(
    "Alex Sam Jo Robin Kim Lee Max Noa Ari Eli Mia Ben Zoe Leo Ava Ian Ivy Tom Eva Dan Amy "
    "Ray Uma Ned Liv Kai Ida Oli Tia Gus"
)
LAST = words(
    "Smith Jones Brown Garcia Miller Davis Lopez Wilson Moore Taylor Lee Walker Hall Young "
    "King Wright Hill Green Adams Baker Nelson Carter Mitchell Perez Roberts Turner "
    "Phillips Evans"
)
SYLLABLES = words("ka lo mi ne ru sa ti vo pe da fi go hu je ba ze ro na li mu")
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


async def fill(
    db: Database, count: int, batch: int, seed: int, c: Corpus, say: Callable[[str], None]
) -> Generated:
    await db.write(lambda conn: mailpit.create_all(conn))
    rng = random.Random(seed)
    generated = Generated()
    started = time.monotonic()
    for first in range(0, count, batch):
        positions = range(first, min(first + batch, count))
        items = [message(rng, c, p, count) for p in positions]
        weights = [w for _, w in STATES]
        states = rng.choices([s for s, _ in STATES], weights=weights, k=len(items))
        read = [rng.random() < 0.6 for _ in items]
        await db.write(write_batch, items, states, read, durable=False)
        generated.ids += [item.id for n, item in enumerate(items) if (first + n) % 1000 == 0]
        middle = count - count // 2
        for p, item in zip(positions, items, strict=True):
            if p == middle:
                generated.middle = item.received_at
        if (first // batch) % 50 == 0 and first:
            rate = first / (time.monotonic() - started)
            say(f"{first:,} messages written, {rate:,.0f}/s")
    if db.dialect.value == "postgresql":
        await db.write(lambda conn: conn.execute(text("ANALYZE")))  # what autovacuum would do
    elif db.target.path is not None:
        # The log as the relay's regular checkpoints keep it, not as a bulk load leaves it.
        with contextlib.closing(sqlite3.connect(db.target.path)) as checkpoint:
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return generated


async def stored_messages(db: Database) -> int:
    return int(
        await db.read(lambda conn: conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one())
    )


async def recall(db: Database, count: int) -> Generated:
    """What `fill` noted, read back from a store it filled with `count` messages."""

    def read(conn: Connection) -> Generated:
        ids = list(conn.execute(text("SELECT id FROM messages ORDER BY id")).scalars())
        middle = conn.execute(
            text("SELECT received_at FROM messages WHERE id = :id"),
            {"id": ids[count - count // 2]},
        ).scalar_one()
        return Generated(ids[::1000], float(middle))

    return await db.read(read)


async def filled(
    db: Database, count: int, batch: int, seed: int, c: Corpus, say: Callable[[str], None]
) -> Generated:
    """A store holding the `count` messages of `seed`: filled now, or, when it holds that many
    already (a kept store, filled by an earlier run), read back."""
    started = time.monotonic()
    if await stored_messages(db) == count:
        say(f"{count:,} messages kept from an earlier run")
        return await recall(db, count)
    generated = await fill(db, count, batch, seed, c, say)
    say(f"{count:,} messages written in {time.monotonic() - started:.0f} s")
    return generated
