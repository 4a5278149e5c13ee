"""The console's server time at a large store: the message list (first page, a deep page, a
search) and one message (its preview tab and its delivery tab), p50 and p95 over repeated
requests, against the target of p95 under 100 ms.

The store is SQLite, filled by `fill()`: a few realistic messages built by the relay's own ingest
code (`store.ingest.build_record`), written again and again under new ids and times through the
sink's writer, so every row (log, bodies, search index, variants, recipients, queue) is what
accepting mail writes. The requests go to the console's ASGI routes in this process, so the time
measured is the server's alone (rendering included, no network, no browser).

`MXRELAY_CONSOLE_BENCH_MESSAGES` sets the number of messages (default 1,000,000; filling takes
minutes on two cores); `MXRELAY_CONSOLE_BENCH_REQUESTS` the requests per figure (default 200).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from starlette.applications import Starlette

from mxrelay.health import Health
from mxrelay.model import Peer, SessionInfo, Transaction
from mxrelay.sinks.queued import new_message_id, write_accepted
from mxrelay.store.backend import Database
from mxrelay.store.ingest import NewMessage, build_record
from mxrelay.store.open import open_store
from mxrelay.web.console import console_routes

MESSAGES = int(os.environ.get("MXRELAY_CONSOLE_BENCH_MESSAGES", "1000000"))
REQUESTS = int(os.environ.get("MXRELAY_CONSOLE_BENCH_REQUESTS", "200"))
BATCH = 5000
TARGET_P95_MS = 100.0
START = datetime(2026, 1, 1, tzinfo=UTC)

WORDS = ("invoice", "booking", "password", "report", "welcome", "reminder", "receipt", "alert")


def template(n: int) -> bytes:
    word = WORDS[n % len(WORDS)]
    return (
        f"From: App {n} <app{n}@example.org>\r\nTo: Customer <customer{n}@example.net>\r\n"
        f"Subject: Your {word} number {n}\r\nMessage-ID: <t{n}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, your {word} is ready.\r\n"
        f"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello, your <b>{word}</b> "
        "is ready.</p>\r\n--b--\r\n"
    ).encode()


def templates() -> list[NewMessage]:
    session = SessionInfo(Peer("10.0.0.5", 41000), helo="app.example.org", esmtp=True)
    return [
        build_record(
            Transaction(
                session=session,
                mail_from=f"app{n}@example.org",
                recipients=(f"customer{n}@example.net", f"copy{n}@example.net"),
                data=template(n),
                received_at=START,
            ),
            message_id=new_message_id(START),
            hostname="relay.example.net",
            hold_reason="hold mode",
        )
        for n in range(64)
    ]


async def fill(db: Database, count: int) -> float:
    """`count` messages one second apart (a third of them share a second with the next);
    returns the seconds it took."""
    started = time.perf_counter()
    models = templates()
    for first in range(0, count, BATCH):
        batch = []
        for n in range(first, min(first + BATCH, count)):
            at = START + timedelta(seconds=n - n // 3)
            batch.append(
                replace(models[n % len(models)], id=new_message_id(at), received_at=at.timestamp())
            )
        await db.write(write_accepted, batch)
    return time.perf_counter() - started


async def timed(client: httpx.AsyncClient, path: str, requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


async def measure(path: Path) -> None:
    async with open_store(f"sqlite:///{path}") as db:
        took = await fill(db, MESSAGES)
        print(f"filled {MESSAGES} messages in {took:.0f} s ({MESSAGES / took:.0f}/s)")
        app = Starlette(routes=console_routes(lambda: db, Health()))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            first = (await client.get("/")).text
            newest = first.split('data-id="', 1)[1].split('"', 1)[0]
            # A deep page: the key of a message near the oldest end of the log.
            deep_at = (START + timedelta(seconds=(MESSAGES // 10) - (MESSAGES // 30))).timestamp()
            cases = [
                ("list, first page", "/"),
                ("list, deep page", f"/?page={deep_at!r}_1"),
                ("search, a word", "/?q=receipt"),
                ("search, to:", "/?q=to%3Acustomer7%40"),
                ("message, HTML tab", f"/message/{newest}"),
                ("message, delivery tab", f"/message/{newest}?tab=timeline"),
            ]
            print(f"\nserver time per request, {REQUESTS} requests each (ms)")
            print(f"{'request':24} {'p50':>8} {'p95':>8}  target p95 < {TARGET_P95_MS:.0f} ms")
            for label, url in cases:
                await timed(client, url, 5)  # warm the caches
                samples = await timed(client, url, REQUESTS)
                verdict = "met" if p95(samples) < TARGET_P95_MS else "MISSED"
                print(
                    f"{label:24} {statistics.median(samples):8.1f} {p95(samples):8.1f}  {verdict}"
                )


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="mxrelay-console-bench-") as folder:
        asyncio.run(measure(Path(folder) / "log.db"))
