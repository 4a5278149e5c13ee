"""The message log at scale: Mailpit's list and search calls against a store of N messages, beside
Mailpit's own approach on the same data, on SQLite and on PostgreSQL (the data: `log_corpus.py`).

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
import json
import math
import os
import statistics
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Connection
from starlette.applications import Starlette

from bench.log_corpus import Corpus, Generated, corpus, filled
from mxrelay.store.backend import Database
from mxrelay.store.open import open_store
from mxrelay.web.api_v1 import api_routes

PAGE = 50
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
        generated = await filled(
            db, plan.messages, plan.batch, plan.seed, c, lambda text: say(f"  {backend}: {text}")
        )
        results = await measure(db, plan, c, generated)
    return report(backend, plan, results)


def run(plan: Plan = Plan(), environ: Mapping[str, str] = os.environ) -> None:
    kept = Path(environ[KEEP]) if environ.get(KEEP) else None
    for backend in plan.backends:
        say = functools.partial(print, flush=True)
        keep = kept if backend == "sqlite" else None
        print(asyncio.run(bench_backend(backend, plan, say, keep)), flush=True)
        print(flush=True)
