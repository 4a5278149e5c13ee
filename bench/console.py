"""The console's server time at a large store: the message list (first page, a deep page, two
searches) and one message (its first tab and its delivery tab), p50 and p95 over repeated
requests, against the target of p95 under 100 ms. Then its cost to the relay: SMTP acceptance
with 10 browsers showing the message list against the same browsers showing nothing, within 5 %.

The store is SQLite, filled by the message-log benchmark's generator (`log_corpus.py`: realistic
application mail written through the store's own ingest writer, most of it delivered, some failed,
deferred or held, most of it read), or found filled: `MXRELAY_BENCH_LOG_STORE` names a SQLite
file that the first run fills and later runs (of this benchmark or of `message_log`) measure
again. The requests go to the console's ASGI routes in this process, so the time measured is the
server's alone (rendering included, no network, no browser). Each one-message request opens
another message, as an operator going through the log does, so it marks that message read.

`MXRELAY_CONSOLE_BENCH_MESSAGES` sets the number of messages (default 1,000,000; filling takes
about twenty minutes on two cores); `MXRELAY_CONSOLE_BENCH_REQUESTS` the requests per figure
(default 200).

For acceptance, `mxrelay serve` in hold mode runs as a process of its own; 2,000 messages from
the same generator go over 10 SMTP sessions (aiosmtplib, in this process) while 10 pages of
Debian's Chromium (driven by Playwright from this process) show the console's message list, live
through the event socket, and again while the same pages show `about:blank` (the browsers' own
CPU is not the console's load): five rounds each, alternating which comes first. Printed: each
round's rate and the relay's CPU time per accepted message (its process tree, read from /proc),
their medians, and the ratios console / blank.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import aiosmtplib
import httpx
from playwright.async_api import async_playwright
from starlette.applications import Starlette
from tests.support.processes import ServeProcess, free_port, wait_for_port

from bench.figures import process_tree_cpu
from bench.log_corpus import Corpus, Generated, corpus, filled, message
from bench.message_log import KEEP, Plan, store
from mxrelay.health import Health
from mxrelay.store import flags
from mxrelay.store.backend import Database
from mxrelay.store.console import PageKey
from mxrelay.web.console import console_routes

TARGET_P95_MS = 100.0
TARGET_LOAD = 0.05
"""The console's extra CPU per accepted message, at most."""


def p95(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def cycle(items: Sequence[str]) -> Iterator[str]:
    while True:
        yield from items


async def timed(client: httpx.AsyncClient, paths: Iterator[str], requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        path = next(paths)
        began = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
    return samples


async def server_time(db: Database, c: Corpus, generated: Generated, requests: int) -> None:
    app = Starlette(routes=console_routes(lambda: db, Health()))
    transport = httpx.ASGITransport(app=app)
    # A page half-way down the log, by the key its "Older" link carries.
    deep = PageKey(generated.ids[len(generated.ids) // 2]).token()
    # Every 1000th message, each opened once (the first 5 warm up), unread until then: opening
    # one marks it read (a kept store has them read by an earlier run).
    ids = generated.ids[5:] + generated.ids[:5]
    await flags.mark(db, ids, False)
    cases: list[tuple[str, Iterator[str]]] = [
        ("list, first page", cycle(["/"])),
        ("list, a page half-way", cycle([f"/?page={deep}"])),
        (f"search, to:{c.search_address}", cycle([f"/?q=to%3A{c.search_address}"])),
        ("search, a word (1 in 100)", cycle([f"/?q={c.search_word}"])),
        ("one message, first tab", cycle([f"/message/{i}" for i in ids])),
        ("one message, delivery tab", cycle([f"/message/{i}?tab=timeline" for i in ids])),
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        print(f"\nserver time per request, {requests} requests each (ms)")
        print(f"{'request':40} {'p50':>8} {'p95':>8}  target p95 < {TARGET_P95_MS:.0f} ms")
        for label, paths in cases:
            await timed(client, paths, 5)  # warm the caches
            samples = await timed(client, paths, requests)
            verdict = "met" if p95(samples) < TARGET_P95_MS else "MISSED"
            print(f"{label:40} {statistics.median(samples):8.1f} {p95(samples):8.1f}  {verdict}")


async def measure(count: int, requests: int, kept: Path | None) -> None:
    plan = Plan(messages=count)
    c = corpus(plan.seed)
    async with store("sqlite", kept) as db:
        generated = await filled(db, count, plan.batch, plan.seed, c, say)
        await server_time(db, c, generated, requests)


def say(text: str) -> None:
    print(f"  {text}", flush=True)


ACCEPT_MESSAGES = 2000
SESSIONS = 10
BROWSERS = 10
ROUNDS = 5
CHROMIUM = "/usr/bin/chromium"
SHOWN = ("about:blank", "console")


def payloads(count: int) -> list[tuple[str, list[str], bytes]]:
    """`count` messages of the generator as (sender, recipients, data), for SMTP."""
    rng, c = random.Random(7), corpus(7)
    found = []
    for n in range(count):
        t = message(rng, c, n, count).transaction
        found.append((t.mail_from, ["customer@example.net"], t.data))
    return found


async def smtp_rate(
    port: int, sent: Sequence[tuple[str, list[str], bytes]], relay_pid: int
) -> tuple[float, float]:
    """Messages per second for `sent` over `SESSIONS` connections, and the relay's CPU
    milliseconds per message (its process and any children: not the SMTP clients' nor the
    browsers')."""

    async def session(share: Sequence[tuple[str, list[str], bytes]]) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as client:
            for sender, recipients, data in share:
                await client.sendmail(sender, recipients, data)

    began, cpu = time.perf_counter(), process_tree_cpu(relay_pid)
    await asyncio.gather(*(session(sent[n::SESSIONS]) for n in range(SESSIONS)))
    elapsed, used = time.perf_counter() - began, process_tree_cpu(relay_pid) - cpu
    return len(sent) / elapsed, used * 1000 / len(sent)


async def acceptance(folder: Path, rounds: int = ROUNDS) -> dict[str, dict[str, list[float]]]:
    """SMTP acceptance by `mxrelay serve` with 10 browser pages on its console's list against the
    same 10 pages on `about:blank` (the browsers' own CPU, on the same cores, is not the
    console's load; neither is the work of driving them, done in this process). Rounds
    alternate which comes first. Returns the rates and the relay's CPU costs by what the pages
    showed."""
    web_port = free_port()
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{folder / 'accept.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
        "MXRELAY_LOG_LEVEL": "warning",
        "MXRELAY_HTTP_LISTEN": f"127.0.0.1:{web_port}",
    }
    sent = payloads(ACCEPT_MESSAGES)
    figures: dict[str, dict[str, list[float]]] = {"rate": {}, "cpu": {}}
    for shown in SHOWN:
        figures["rate"][shown], figures["cpu"][shown] = [], []
    relay = await ServeProcess.start(env, folder / "relay.log")
    pinned = pin(relay.process.pid)
    try:
        await asyncio.to_thread(wait_for_port, web_port)
        url = f"http://127.0.0.1:{web_port}/"
        pid = relay.process.pid
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                pages = [await (await browser.new_context()).new_page() for _ in range(BROWSERS)]
                await smtp_rate(relay.smtp_port, sent[:200], pid)  # warm up
                for round_ in range(rounds):
                    for shown in SHOWN if round_ % 2 == 0 else reversed(SHOWN):
                        for page in pages:
                            await page.goto(url if shown == "console" else "about:blank")
                        await asyncio.sleep(1)  # the pages settle: sockets open, first reads done
                        rate, cost = await smtp_rate(relay.smtp_port, sent, pid)
                        figures["rate"][shown].append(rate)
                        figures["cpu"][shown].append(cost)
            finally:
                await browser.close()
    finally:
        relay.close()
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
    return figures


def pin(relay_pid: int) -> set[int] | None:
    """With two CPUs or more: the relay (and its threads) on the first, this process (the SMTP
    clients, the browsers it starts) on the others, as in production, where browsers run on
    their users' machines; this process's CPUs before (to give back), None when not pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    for task in os.listdir(f"/proc/{relay_pid}/task"):
        os.sched_setaffinity(int(task), {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    return set(cpus)


def report_acceptance(figures: Mapping[str, Mapping[str, list[float]]]) -> None:
    print(f"\nSMTP acceptance, {ACCEPT_MESSAGES} messages over {SESSIONS} sessions")
    for key, title, unit in (
        ("rate", "rate", "msg/s"),
        ("cpu", "the relay's CPU per accepted message", "ms"),
    ):
        print(f"{title} ({unit})")
        for shown, runs in figures[key].items():
            cells = "  ".join(f"{value:7.2f}" for value in runs)
            print(
                f"  {BROWSERS} pages on {shown:12} {cells}  median {statistics.median(runs):7.2f}"
            )
    rate = statistics.median(figures["rate"]["console"]) / statistics.median(
        figures["rate"]["about:blank"]
    )
    cpu = statistics.median(figures["cpu"]["console"]) / statistics.median(
        figures["cpu"]["about:blank"]
    )
    verdict = "met" if cpu - 1 <= TARGET_LOAD else "MISSED"
    print(f"ratio console / blank: rate {rate:.3f} ({(rate - 1) * 100:+.1f} %), ", end="")
    print(f"CPU per message {cpu:.3f} ({(cpu - 1) * 100:+.1f} %; target within 5 %: {verdict})")


def run(environ: Mapping[str, str] = os.environ) -> None:
    count = int(environ.get("MXRELAY_CONSOLE_BENCH_MESSAGES", "1000000"))
    requests = int(environ.get("MXRELAY_CONSOLE_BENCH_REQUESTS", "200"))
    kept = Path(environ[KEEP]) if environ.get(KEEP) else None
    with tempfile.TemporaryDirectory(prefix="mxrelay-console-bench-") as folder:
        asyncio.run(measure(count, requests, kept))
        report_acceptance(asyncio.run(acceptance(Path(folder))))
