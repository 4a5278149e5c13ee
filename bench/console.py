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

Then the API's live events on a fresh relay the same way: 10 websocket clients on `/api/events`
in a process of their own (`python -m bench.console watch URL 10`, reading and dropping every
frame, on the CPUs of this process, not the relay's) connected for a round and gone for the
next, five rounds each, alternating. Printed as above (no clients / 10 clients), and the frames
the clients received per round (a `new` for every message, and `stats`).
`MXRELAY_CONSOLE_BENCH_MESSAGES=0` leaves the server time (and the million messages) out and
measures only the two acceptance cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import aiosmtplib
import httpx
from playwright.async_api import async_playwright
from starlette.applications import Starlette
from tests.support.processes import ServeProcess, free_port, wait_for_port
from websockets.asyncio.client import ClientConnection, connect

from bench.figures import process_tree_cpu
from bench.log_corpus import Corpus, Generated, corpus, filled, message
from bench.message_log import KEEP, Plan, store
from bench.rig import REPO
from mxrelay.health import Health
from mxrelay.store import flags
from mxrelay.store.backend import Database
from mxrelay.store.console import PageKey
from mxrelay.web.console import console_routes

TARGET_P95_MS = 100.0
TARGET_LOAD = 0.05
"""What the console (or the event clients) may change in the acceptance rate or the relay's CPU
per accepted message, at most."""


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
WATCHERS = 10
PACE = 200.0
"""Messages a second in the paced rounds: well within what the relay accepts on one core."""
BLANK, CONSOLE = "pages on about:blank", "pages on the console"
NO_WATCHERS, WATCHED = "no event client", f"{WATCHERS} event clients"


def payloads(count: int) -> list[tuple[str, list[str], bytes]]:
    """`count` messages of the generator as (sender, recipients, data), for SMTP."""
    rng, c = random.Random(7), corpus(7)
    found = []
    for n in range(count):
        t = message(rng, c, n, count).transaction
        found.append((t.mail_from, ["customer@example.net"], t.data))
    return found


async def smtp_rate(
    port: int, sent: Sequence[tuple[str, list[str], bytes]], relay_pid: int, pace: float = 0.0
) -> tuple[float, float]:
    """Messages per second for `sent` over `SESSIONS` connections, and the relay's CPU
    milliseconds per message (its process and any children: not the SMTP clients' nor the
    browsers'). As fast as the relay answers, or at `pace` messages a second in all."""

    async def session(n: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as client:
            for k, (sender, recipients, data) in enumerate(sent[n::SESSIONS]):
                if pace:
                    await asyncio.sleep(began + (k * SESSIONS + n) / pace - time.perf_counter())
                await client.sendmail(sender, recipients, data)

    began, cpu = time.perf_counter(), process_tree_cpu(relay_pid)
    await asyncio.gather(*(session(n) for n in range(SESSIONS)))
    elapsed, used = time.perf_counter() - began, process_tree_cpu(relay_pid) - cpu
    return len(sent) / elapsed, used * 1000 / len(sent)


Condition = tuple[str, Callable[[], Awaitable[None]]]
"""A label, and what puts the condition in place before a round."""

Figures = dict[str, dict[str, list[float]]]
"""By measure, by condition, a value per round: `rate` (msg/s) and `cpu` (the relay's ms per
message) as fast as the relay accepts, and `paced cpu` at `PACE` messages a second."""

MEASURES = ("rate", "cpu", "paced cpu")


@contextlib.asynccontextmanager
async def serving(folder: Path) -> AsyncIterator[tuple[ServeProcess, int]]:
    """`mxrelay serve` in hold mode on SQLite, recipients in a trusted domain (no DNS), pinned to
    the first CPU; its UI port."""
    web_port = free_port()
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{folder / 'accept.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
        "MXRELAY_LOG_LEVEL": "warning",
        "MXRELAY_HTTP_LISTEN": f"127.0.0.1:{web_port}",
    }
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    relay = await ServeProcess.start(env, folder / "relay.log")
    pinned = pin(relay.process.pid)
    try:
        await asyncio.to_thread(wait_for_port, web_port)
        yield relay, web_port
    finally:
        relay.close()
        if pinned is not None:
            os.sched_setaffinity(0, pinned)


async def alternate(
    relay: ServeProcess, conditions: Sequence[Condition], rounds: int, messages: int
) -> Figures:
    """`rounds` rounds under each condition, alternating which comes first, after a warm-up;
    each round `messages` messages as fast as the relay accepts them, then as many at `PACE`
    (the same batches of commits under every condition, so that the relay's CPU per message
    differs by the condition's own work alone: at full speed, clients slowed by the browsers
    on their core would make the relay's group commits smaller and each message dearer)."""
    sent = payloads(messages)
    port, pid = relay.smtp_port, relay.process.pid
    figures: Figures = {measure: {label: [] for label, _ in conditions} for measure in MEASURES}
    await smtp_rate(port, sent[:200], pid)  # warm up
    for round_ in range(rounds):
        for label, enter in conditions if round_ % 2 == 0 else list(reversed(conditions)):
            await enter()
            await asyncio.sleep(1)  # settle: sockets open, first reads done
            rate, cost = await smtp_rate(port, sent, pid)
            _, paced = await smtp_rate(port, sent, pid, pace=PACE)
            figures["rate"][label].append(rate)
            figures["cpu"][label].append(cost)
            figures["paced cpu"][label].append(paced)
    return figures


async def acceptance(
    folder: Path, rounds: int = ROUNDS, messages: int = ACCEPT_MESSAGES
) -> Figures:
    """SMTP acceptance by `mxrelay serve` with 10 browser pages on its console's list against the
    same 10 pages on `about:blank` (the browsers' own CPU, on the same cores, is not the
    console's load; neither is the work of driving them, done in this process)."""
    async with serving(folder) as (relay, web_port), async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            pages = [await (await browser.new_context()).new_page() for _ in range(BROWSERS)]

            def showing(url: str) -> Callable[[], Awaitable[None]]:
                async def enter() -> None:
                    for page in pages:
                        await page.goto(url)

                return enter

            return await alternate(
                relay,
                [
                    (BLANK, showing("about:blank")),
                    (CONSOLE, showing(f"http://127.0.0.1:{web_port}/")),
                ],
                rounds,
                messages,
            )
        finally:
            await browser.close()


class Watchers:
    """`WATCHERS` websocket clients of `/api/events` in a process of their own (`watch`, pinned
    where this process is, away from the relay), so their CPU is not the relay's: started for a
    round, stopped before the next."""

    def __init__(self, url: str, count: int = WATCHERS) -> None:
        self.url = url
        self.count = count
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
            str(self.count),
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


async def event_acceptance(
    folder: Path, rounds: int = ROUNDS, messages: int = ACCEPT_MESSAGES
) -> tuple[Figures, list[int]]:
    """SMTP acceptance with `WATCHERS` clients on `/api/events` against none: the cost of the
    live feed (the new rows read once, each frame encoded once and sent to every client). The
    frames the clients received in each round they were connected, too."""
    async with serving(folder) as (relay, web_port):
        watchers = Watchers(f"ws://127.0.0.1:{web_port}/api/events")
        try:
            figures = await alternate(
                relay, [(NO_WATCHERS, watchers.stop), (WATCHED, watchers.start)], rounds, messages
            )
        finally:
            await watchers.stop()
    return figures, watchers.frames[: len(figures["rate"][WATCHED])]


async def watch(url: str, count: int) -> None:
    """Connect `count` clients to `url`, say `connected`, read and drop their frames until
    standard input closes (printing how many so far for each line read from it), then print how
    many they received in all."""
    received = 0

    async def client(socket: ClientConnection) -> None:
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


def pin(relay_pid: int) -> set[int] | None:
    """With two CPUs or more: the relay (and its threads) on the first, this process (the SMTP
    clients, the browsers or event clients it starts) on the others, as in production, where
    those run on their users' machines; this process's CPUs before (to give back), None when
    not pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    for task in os.listdir(f"/proc/{relay_pid}/task"):
        os.sched_setaffinity(int(task), {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    return set(cpus)


def report_acceptance(title: str, figures: Figures, without: str, loaded: str) -> None:
    """Each round, the medians, and what `loaded` changes against `without`, each against 5 %:
    the rate at full speed, and the relay's CPU per message at `PACE` (the condition's own load
    on the relay). The CPU per message at full speed is shown too."""
    print(f"\n{title}: SMTP acceptance, {ACCEPT_MESSAGES} messages over {SESSIONS} sessions")
    for key, heading, unit in (
        ("rate", "rate, as fast as the relay accepts", "msg/s"),
        ("cpu", "the relay's CPU per accepted message, as fast as it accepts", "ms"),
        ("paced cpu", f"the relay's CPU per accepted message at {PACE:.0f} msg/s", "ms"),
    ):
        print(f"{heading} ({unit})")
        for label, runs in figures[key].items():
            cells = "  ".join(f"{value:7.2f}" for value in runs)
            print(f"  {label:24} {cells}  median {statistics.median(runs):7.2f}")
    rate, cpu, paced = (
        statistics.median(figures[key][loaded]) / statistics.median(figures[key][without])
        for key in MEASURES
    )
    print(f"ratio {loaded} / {without}:")
    print(f"  rate {rate:.3f} ({(rate - 1) * 100:+.1f} %; target within 5 %: {verdict(1 - rate)})")
    print(f"  CPU per message, as fast as it accepts {cpu:.3f} ({(cpu - 1) * 100:+.1f} %)")
    print(
        f"  CPU per message at {PACE:.0f} msg/s {paced:.3f} ({(paced - 1) * 100:+.1f} %; "
        f"target within 5 %: {verdict(paced - 1)})"
    )


def verdict(cost: float) -> str:
    """`cost`: the fraction lost (rate) or added (CPU)."""
    return "met" if cost <= TARGET_LOAD else "MISSED"


def run(environ: Mapping[str, str] = os.environ) -> None:
    count = int(environ.get("MXRELAY_CONSOLE_BENCH_MESSAGES", "1000000"))
    requests = int(environ.get("MXRELAY_CONSOLE_BENCH_REQUESTS", "200"))
    kept = Path(environ[KEEP]) if environ.get(KEEP) else None
    with tempfile.TemporaryDirectory(prefix="mxrelay-console-bench-") as folder:
        if count:
            asyncio.run(measure(count, requests, kept))
        browsers = asyncio.run(acceptance(Path(folder) / "browsers"))
        report_acceptance(f"{BROWSERS} browser pages", browsers, BLANK, CONSOLE)
        events, frames = asyncio.run(event_acceptance(Path(folder) / "events"))
        report_acceptance(f"{WATCHERS} clients of /api/events", events, NO_WATCHERS, WATCHED)
        print(f"frames the event clients received per round: {', '.join(map(str, frames))}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"]:
        asyncio.run(watch(sys.argv[2], int(sys.argv[3])))
