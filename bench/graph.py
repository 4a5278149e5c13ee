"""Graph delivery: how fast the worker pushes to Graph, and how exactly pacing holds its rate.

Everything runs against the HTTPS stand-in for the identity platform and Graph (the test suite's
`tests/support/graph_standin.py`) in a process of its own, as Graph is a service of its own, with
the test DNS server for the RCPT checks in this process. The relay is `mxrelay serve` in its own
process, as deployed; the SMTP clients are in this one. Two tables, three runs each, a fresh store
per run:

1. Pacing off, the stand-in answering every sendMail 50 ms after it arrived (its own work
   included), 4 requests at once (`MXRELAY_GRAPH_CONCURRENCY=4`,
   `MXRELAY_DELIVERY_CONCURRENCY=4`): messages per second delivered by the whole relay (SMTP in →
   store → queue → worker → Graph), beside the concurrency ceiling (4 requests / 50 ms = 80
   messages/s; target: 90 % of it) and the Graph transport alone measured in the same run (four
   delivery loops in this process, no queue). The rate is counted at the stand-in, from the first
   message's arrival to the last one's.
2. Pacing on: `MXRELAY_GRAPH_MESSAGES_PER_MINUTE` set to RATE_PER_MINUTE, the stand-in enforcing
   the same limit itself (a sliding window of 60 s by arrival, plus Microsoft's request and
   concurrency limits) and answering 429 beyond it. The achieved rate is compared with the
   configured one (target: within 2 %), and the 429s are counted (target: none).

3. The same two runs with the store on PostgreSQL (a throw-away cluster, `tests/support/postgres.py`),
   where replicas share the queue and so the pacing lanes: every message's grant and release is
   a transaction in the database (`delivery/graph/lanes.py`), which is what these runs price; and
   the lanes alone, in this process and in the database: microseconds per message (a grant and
   its release), one after another.

On two cores the stand-in's own work (TLS, HTTP, the token's signature, the MIME header) shares
the machine with the relay and the clients; requests that arrive together are read one after
another, so the figures are a lower bound. The queue is polled every 20 ms
(`MXRELAY_QUEUE_POLL_INTERVAL`); with the default 1 s a deferred message can go up to a second
after its slot, which moves single sends but not the rate over minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import aiosmtplib
import uvloop
from tests.support.dns_server import DnsServer
from tests.support.graph_harness import job, message, relay_environ
from tests.support.graph_relay import graph_relay_environ
from tests.support.graph_standin import MAILBOX, GraphStandIn, MailboxLimits
from tests.support.postgres import PostgresServer
from tests.support.processes import ServeProcess

from bench.figures import Row, format_facts, format_table, ratio_line
from mxrelay.config import load_settings
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.graph.pacing import Grant, Pacer, PacingLimits
from mxrelay.store.open import open_store

RUNS = 3
MESSAGES = 400
LATENCY = 0.05
CONCURRENCY = 4
SESSIONS = 4
RATE_PER_MINUTE = 1200
PACED_MESSAGES = 300
RECIPIENT = "alice@example.net"
DRAIN_TIMEOUT = 120.0
LANE_MESSAGES = 500


def _dns() -> DnsServer:
    server = DnsServer()
    server.mx("example.net", "10 mx.example.net")
    server.a("mx.example.net", "192.0.2.10")
    return server


def _rate(arrivals: Sequence[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


def _serve_standin(
    link: Connection, directory: Path, latency: float, limits: MailboxLimits | None
) -> None:
    """The stand-in's process: serves until told to stop, answering the benchmark's questions.
    Its event loop is uvloop's, as the relay's is: the stand-in's own TLS and HTTP work per
    request is then about a third less (it answers `latency` after a request arrived, but
    requests arriving together are read one after another)."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with GraphStandIn.running(directory, latency=latency, limits=limits) as standin:
        link.send(standin.environ())
        while (question := link.recv()) != "stop":
            if isinstance(question, tuple):  # ("arrived", count, within)
                standin.wait_for_messages(question[1], question[2])
                link.send(True)
            else:  # "result"
                link.send((sorted(m.at for m in standin.sent()), standin.throttled))


class StandInProcess:
    """The stand-in in a process of its own, as Graph is a service of its own: its TLS and MIME
    work runs on the other core and does not take the relay's interpreter lock."""

    def __init__(self, link: Connection, environ: dict[str, str]) -> None:
        self._link = link
        self._environ = environ

    def environ(self, **extra: str) -> dict[str, str]:
        """As `GraphStandIn.environ`: settings that point mxrelay at the stand-in."""
        return {**self._environ, **extra}

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, directory: Path, *, latency: float, limits: MailboxLimits | None = None
    ) -> Iterator[StandInProcess]:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve_standin, args=(theirs, directory, latency, limits), daemon=True
        )
        process.start()
        try:
            if not ours.poll(30):
                raise RuntimeError("the Graph stand-in's process did not start")
            yield cls(ours, ours.recv())
            ours.send("stop")
            process.join(15)
        finally:
            if process.is_alive():
                process.kill()
                process.join(5)

    async def arrived(self, count: int, within: float) -> None:
        def wait() -> None:
            self._link.send(("arrived", count, within))
            self._link.recv()

        await asyncio.to_thread(wait)

    def result(self) -> tuple[float, int]:
        """(messages/s at the stand-in, its 429 answers)."""
        self._link.send("result")
        arrivals, throttled = self._link.recv()
        return _rate(arrivals), throttled


async def transport_alone(directory: Path, count: int) -> float:
    """The ceiling: the Graph transport with CONCURRENCY delivery loops, no queue, no SMTP."""
    with StandInProcess.running(directory, latency=LATENCY) as standin:
        environ = relay_environ(standin, MXRELAY_GRAPH_CONCURRENCY=str(CONCURRENCY))
        transport = GraphTransport.from_settings(load_settings(environ), environ)
        jobs = [job(message(subject=f"m{i}")) for i in range(count)]
        pending = iter(jobs)

        async def loop() -> None:
            for item in pending:
                await transport.deliver(item)

        try:
            await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
        finally:
            await transport.aclose()
        return standin.result()[0]


async def _submit(port: int, count: int, sessions: int) -> None:
    """`count` messages over `sessions` SMTP connections, each reused for its share."""

    async def session(share: int, index: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as client:
            for seq in range(share):
                data = message(subject=f"s{index}-{seq}")
                await client.sendmail(MAILBOX, [RECIPIENT], data)

    shares = [count // sessions + (1 if i < count % sessions else 0) for i in range(sessions)]
    await asyncio.gather(*(session(share, i) for i, share in enumerate(shares)))


async def through_the_relay(
    directory: Path, count: int, *, paced: bool, database_url: str | None = None
) -> tuple[float, int]:
    """(messages/s at the stand-in, 429s) for `count` messages through the whole relay, its
    store SQLite in `directory` or the PostgreSQL database `database_url`."""
    limits = (
        MailboxLimits(
            messages=(RATE_PER_MINUTE, 60.0),
            requests=(10_000, 600.0),
            concurrency=CONCURRENCY,
        )
        if paced
        else None
    )
    with (
        StandInProcess.running(directory / "standin", latency=LATENCY, limits=limits) as standin,
        _dns() as dns,
    ):
        extra = {
            "MXRELAY_GRAPH_CONCURRENCY": str(CONCURRENCY),
            "MXRELAY_DELIVERY_CONCURRENCY": str(CONCURRENCY),
            "MXRELAY_QUEUE_POLL_INTERVAL": "20ms",
            "MXRELAY_STORE_COMMIT_WINDOW": "1ms",
        }
        if paced:
            extra["MXRELAY_GRAPH_MESSAGES_PER_MINUTE"] = str(RATE_PER_MINUTE)
        if database_url is not None:
            extra["MXRELAY_DATABASE_URL"] = database_url
        environ = graph_relay_environ(standin, dns, directory, **extra)
        # `mxrelay serve` as deployed, in a process of its own, on the ports ServeProcess picks.
        served = {k: v for k, v in environ.items() if not k.endswith("_LISTEN")}
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        relay = await ServeProcess.start(served, directory / "relay.log")
        try:
            await _submit(relay.smtp_port, count, SESSIONS)
            await standin.arrived(count, within=DRAIN_TIMEOUT)
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                relay.terminate()
            relay.close()
        return standin.result()


@contextlib.contextmanager
def postgres() -> Iterator[Callable[[], str]]:
    """A throw-away PostgreSQL cluster; the function gives the URL of a new, empty database."""
    server = PostgresServer()
    names = itertools.count()
    try:
        server.start()

        def fresh() -> str:
            name = f"bench_graph_{next(names)}"
            server.sql(f"CREATE DATABASE {name}")
            return server.url(name)

        yield fresh
    finally:
        server.close()


async def lanes_alone(database_url: str) -> tuple[float, float | None]:
    """Microseconds per message (a grant, then its release) for the lanes in this process and
    for the lanes in the database (None where this version has none)."""
    limits = PacingLimits(messages=0)  # every message is granted at once: the bookkeeping alone
    pacer = Pacer(limits)
    started = time.perf_counter()
    for i in range(LANE_MESSAGES):
        grant = pacer.acquire(MAILBOX, f"m{i}", recipients=1, size=1000, now=float(i))
        assert isinstance(grant, Grant)
        pacer.release(grant, sent=True, now=float(i))
    local = (time.perf_counter() - started) / LANE_MESSAGES * 1e6
    try:
        from mxrelay.delivery.graph.lanes import SharedLanes
        from mxrelay.store.lanes import LaneStore
    except ImportError:
        return local, None
    async with open_store(database_url) as db:
        lanes = SharedLanes(LaneStore(db), limits)
        started = time.perf_counter()
        for i in range(LANE_MESSAGES):
            shared = await lanes.acquire(MAILBOX, f"m{i}", recipients=1, size=1000, hold_for=60)
            assert isinstance(shared, Grant)
            await lanes.release(shared, sent=True)
        return local, (time.perf_counter() - started) / LANE_MESSAGES * 1e6


async def measure() -> None:
    ceiling: list[float] = []
    relay: list[float] = []
    paced: list[float] = []
    throttled: list[int] = []
    relay_pg: list[float] = []
    paced_pg: list[float] = []
    throttled_pg: list[int] = []
    lanes_local: list[float] = []
    lanes_shared: list[float] = []
    for _ in range(RUNS):
        with (
            tempfile.TemporaryDirectory(prefix="mxrelay-bench-graph-") as tmp,
            postgres() as database,
        ):
            root = Path(tmp)
            ceiling.append(await transport_alone(root / "alone", MESSAGES))
            rate, _ = await through_the_relay(root / "relay", MESSAGES, paced=False)
            relay.append(rate)
            rate, answered_429 = await through_the_relay(root / "paced", PACED_MESSAGES, paced=True)
            paced.append(rate)
            throttled.append(answered_429)
            rate, _ = await through_the_relay(
                root / "relay-pg", MESSAGES, paced=False, database_url=database()
            )
            relay_pg.append(rate)
            rate, answered_429 = await through_the_relay(
                root / "paced-pg", PACED_MESSAGES, paced=True, database_url=database()
            )
            paced_pg.append(rate)
            throttled_pg.append(answered_429)
            local, shared = await lanes_alone(database())
            lanes_local.append(local)
            if shared is not None:
                lanes_shared.append(shared)
    rows = [
        Row("relay: SMTP → queue → worker → Graph", tuple(relay)),
        Row("transport alone, no queue", tuple(ceiling)),
    ]
    print(
        format_table(
            f"pacing off, {MESSAGES} messages, {CONCURRENCY} requests at once, stand-in answering "
            f"in {LATENCY * 1000:.0f} ms",
            "messages/s",
            rows,
            [ratio_line("relay / transport alone", rows[0], rows[1])],
        )
    )
    print(ceiling_facts(rows[0]))
    print()
    print(paced_table(paced, throttled))
    print()
    pg = [Row("relay on PostgreSQL: SMTP → queue → worker → Graph", tuple(relay_pg)), rows[1]]
    print(
        format_table(
            f"store on PostgreSQL, pacing off, {MESSAGES} messages, {CONCURRENCY} requests at once",
            "messages/s",
            pg,
            [ratio_line("relay on PostgreSQL / transport alone", pg[0], pg[1])],
        )
    )
    print()
    print(paced_table(paced_pg, throttled_pg, label="relay on PostgreSQL, paced"))
    lanes = [Row("lanes in this process", tuple(lanes_local))]
    if lanes_shared:
        lanes.append(Row("lanes in PostgreSQL", tuple(lanes_shared)))
    print(
        format_table(
            f"pacing lanes alone, {LANE_MESSAGES} messages one after another, a grant and its "
            "release each",
            "microseconds per message",
            lanes,
        )
    )


def ceiling_facts(relay: Row) -> str:
    """The relay's rate against what the concurrency limit allows (the target: 90 % of it)."""
    ceiling = CONCURRENCY / LATENCY
    share = relay.median / ceiling * 100
    return format_facts(
        "against the concurrency ceiling",
        [
            ("ceiling", f"{CONCURRENCY} requests / {LATENCY * 1000:.0f} ms = {ceiling:.0f}/s"),
            (
                "relay (median)",
                f"{relay.median:.1f} messages/s, {share:.1f} % "
                f"(target 90 %: {'met' if share >= 90 else 'MISSED'})",
            ),
        ],
    )


def paced_table(
    rates: Sequence[float], throttled: Sequence[int], *, label: str = "relay, paced"
) -> str:
    configured = RATE_PER_MINUTE / 60
    row = Row(label, tuple(rates))
    deviation = (row.median - configured) / configured * 100
    within = abs(deviation) <= 2.0
    table = format_table(
        f"pacing on at {RATE_PER_MINUTE}/min, {PACED_MESSAGES} messages, stand-in enforcing "
        f"{RATE_PER_MINUTE} per 60 s itself",
        "messages/s",
        [row],
    )
    facts = format_facts(
        "pacing",
        [
            ("configured rate", f"{configured:.2f} messages/s"),
            (
                "achieved (median)",
                f"{row.median:.2f} messages/s, {deviation:+.2f} % "
                f"(target within 2 %: {'met' if within else 'MISSED'})",
            ),
            (
                "429 answers",
                f"{sum(throttled)} in {len(throttled)} runs "
                f"(target 0: {'met' if sum(throttled) == 0 else 'MISSED'})",
            ),
        ],
    )
    return f"{table}\n{facts}\n"


def run() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    run()
