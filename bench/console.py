"""The console's server time at a large store: the message list (first page, a deep page, a
search) and one message (its preview tab and its delivery tab), p50 and p95 over repeated
requests, against the target of p95 under 100 ms. Then its cost to the relay: SMTP acceptance
with 10 browsers showing the message list (each refreshing it as it does) against none, and with
10 websocket clients on the API's live events (`/api/events`) against none, each within 5 %.

The store is SQLite, filled by `fill()`: a few realistic messages built by the relay's own ingest
code (`store.ingest.build_record`), written again and again under new ids and times through the
sink's writer, so every row (log, bodies, search index, variants, recipients, queue) is what
accepting mail writes. The requests go to the console's ASGI routes in this process, so the time
measured is the server's alone (rendering included, no network, no browser).

`MXRELAY_CONSOLE_BENCH_MESSAGES` sets the number of messages (default 1,000,000; filling takes
minutes on two cores; 0 leaves the server time out); `MXRELAY_CONSOLE_BENCH_REQUESTS` the
requests per figure (default 200).

For acceptance, a relay in hold mode runs in this process; 2,000 messages go over 10 SMTP
sessions (aiosmtplib, in the same process) while 10 pages of Debian's Chromium (through Playwright)
show the console's message list, and again while the same pages show `about:blank` (the browsers'
own CPU is not the console's load), five rounds each, alternating; the median rates are compared.
The event clients are measured the same way on a fresh relay, the clients in a process of their
own (`python -m bench.console watch URL N`), connected for a round and gone for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from playwright.async_api import async_playwright
from starlette.applications import Starlette
from tests.support.relay_app import running_relay

from bench.rig import REPO
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


ACCEPT_MESSAGES = 2000
SESSIONS = 10
BROWSERS = 10
WATCHERS = 10
ROUNDS = 5
CHROMIUM = "/usr/bin/chromium"
TARGET_CHANGE = 5.0
"""Per cent the acceptance rate may lose with the console, or the event clients, there."""


async def smtp_rate(port: int, count: int) -> tuple[float, float]:
    """Messages per second for `count` messages over `SESSIONS` connections, and this process's
    CPU milliseconds per message (the relay's and the SMTP clients', not the browsers')."""
    data = template(1)

    async def session(share: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as client:
            for _ in range(share):
                await client.sendmail("app1@example.org", ["customer1@example.net"], data)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(session(count // SESSIONS) for _ in range(SESSIONS)))
    elapsed, used = time.perf_counter() - began, time.process_time() - cpu
    return count / elapsed, used * 1000 / count


Condition = tuple[str, Callable[[], Awaitable[None]]]
"""A label, and what puts the condition in place before a round."""


@dataclass(frozen=True, slots=True)
class Rounds:
    """Each condition's rate (msg/s) and CPU per message (ms), a value per round."""

    rates: dict[str, list[float]]
    costs: dict[str, list[float]]


async def alternate(port: int, conditions: Sequence[Condition]) -> Rounds:
    """`ROUNDS` rounds of `ACCEPT_MESSAGES` messages under each condition, alternating which
    comes first, after a warm-up."""
    await smtp_rate(port, 200)
    rounds = Rounds({label: [] for label, _ in conditions}, {label: [] for label, _ in conditions})
    for round_ in range(ROUNDS):
        for label, enter in conditions if round_ % 2 == 0 else list(reversed(conditions)):
            await enter()
            rate, cost = await smtp_rate(port, ACCEPT_MESSAGES)
            rounds.rates[label].append(rate)
            rounds.costs[label].append(cost)
    return rounds


def report(title: str, rounds: Rounds, without: str, loaded: str, what: str) -> None:
    """The rounds, their medians, and the change `loaded` makes against `without`."""
    print(f"\n{title}: SMTP acceptance, {ACCEPT_MESSAGES} messages over {SESSIONS} sessions")
    for heading, figures, unit in (
        ("rate", rounds.rates, "msg/s"),
        ("the relay process's CPU per message", rounds.costs, "ms"),
    ):
        print(f"{heading} ({unit})")
        for label, runs in figures.items():
            cells = "  ".join(f"{value:7.2f}" for value in runs)
            print(f"  {label:24} {cells}  median {statistics.median(runs):7.2f}")
    base, with_load = (statistics.median(rounds.rates[k]) for k in (without, loaded))
    change = (with_load - base) / base * 100
    cost = statistics.median(rounds.costs[loaded]) / statistics.median(rounds.costs[without])
    verdict = "met" if change >= -TARGET_CHANGE else "MISSED"
    print(
        f"rate with {what}: {change:+.1f} % (ratio {with_load / base:.3f}; "
        f"target within {TARGET_CHANGE:.0f} %: {verdict})"
    )
    print(f"CPU per message with {what}: {(cost - 1) * 100:+.1f} %")


def relay_env(folder: Path) -> dict[str, str]:
    """A relay in hold mode on SQLite, recipients in a trusted domain (no DNS)."""
    return {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{folder / 'accept.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
        "MXRELAY_LOG_LEVEL": "warning",
    }


async def acceptance(folder: Path) -> None:
    """SMTP acceptance with 10 browser pages on the console's list against the same 10 pages on
    `about:blank`: the browsers themselves cost CPU on a small machine, and the figure asked for is
    the console's own load."""
    async with running_relay(relay_env(folder)) as relay, async_playwright() as playwright:
        url = f"http://127.0.0.1:{relay.web_port}/"
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            pages = [await (await browser.new_context()).new_page() for _ in range(BROWSERS)]

            def showing(target: str) -> Callable[[], Awaitable[None]]:
                async def enter() -> None:
                    for page in pages:
                        await page.goto(target)

                return enter

            rounds = await alternate(
                relay.smtp_port,
                [
                    ("pages on about:blank", showing("about:blank")),
                    ("pages on the console", showing(url)),
                ],
            )
        finally:
            await browser.close()
    report(
        f"{BROWSERS} browser pages",
        rounds,
        "pages on about:blank",
        "pages on the console",
        "the console open",
    )


class Watchers:
    """`WATCHERS` websocket clients of `/api/events` in a process of their own (`watch`), so
    their CPU is not this process's: started for a round, stopped before the next."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.process: asyncio.subprocess.Process | None = None
        self.frames: list[int] = []
        """Frames the clients received in each round they were connected (all of them)."""

    async def start(self) -> None:
        await self.stop()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.console",
            "watch",
            self.url,
            str(WATCHERS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if line.strip() != b"connected":
            raise RuntimeError(f"the event clients did not connect: {line!r}")

    async def received(self) -> int:
        """Frames the clients have received so far (0 when they are not connected)."""
        if self.process is None:
            return 0
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"count\n")
        await self.process.stdin.drain()
        return int(await asyncio.wait_for(self.process.stdout.readline(), 60))

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        counted = await asyncio.wait_for(process.stdout.read(), 60)
        await process.wait()
        self.frames.append(int(counted.strip() or b"0"))


async def event_acceptance(folder: Path) -> None:
    """SMTP acceptance with `WATCHERS` clients on `/api/events` against none: the cost of the live
    feed (the poller reading the new rows, each frame encoded once and sent to every client)."""
    async with running_relay(relay_env(folder)) as relay:
        watchers = Watchers(f"ws://127.0.0.1:{relay.web_port}/api/events")
        try:
            rounds = await alternate(
                relay.smtp_port,
                [("no event client", watchers.stop), ("10 event clients", watchers.start)],
            )
        finally:
            await watchers.stop()
    report(
        f"{WATCHERS} clients of /api/events",
        rounds,
        "no event client",
        "10 event clients",
        "the event clients connected",
    )
    per_client = [n / WATCHERS for n in watchers.frames if n]
    print(
        f"frames each event client received per round: {', '.join(f'{n:.0f}' for n in per_client)}"
    )


async def watch(url: str, count: int) -> None:
    """Connect `count` clients to `url`, say `connected`, read and drop their frames until
    standard input closes (printing how many so far for each line read from it), then print how
    many they received in all."""
    from websockets.asyncio.client import connect

    received = 0

    async def client(socket: Any) -> None:
        nonlocal received
        async for _ in socket:
            received += 1

    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(connect(url, max_queue=None)) for _ in range(count)
        ]
        readers = [asyncio.create_task(client(s)) for s in sockets]
        print("connected", flush=True)
        while await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline):
            print(received, flush=True)
        for reader in readers:
            reader.cancel()
    print(received, flush=True)


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="mxrelay-console-bench-") as folder:
        if MESSAGES:
            asyncio.run(measure(Path(folder) / "log.db"))
        asyncio.run(acceptance(Path(folder)))
        asyncio.run(event_acceptance(Path(folder) / "events"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"]:
        asyncio.run(watch(sys.argv[2], int(sys.argv[3])))
