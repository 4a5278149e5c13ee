"""Front door (issue 2, section 7): mxrelay passthrough against a Postfix relay on the same rig,
memory with idle connections, and the verdict cache under a flood of random domains.

1. Throughput: smtp-source sends 5,000 messages of 2 KB (20 sessions, then 1) to (a) mxrelay in
   passthrough mode in front of smtp-sink and (b) Postfix with `reject_unknown_recipient_domain` and
   `relayhost` pointing at the same smtp-sink; both resolve the recipient domain through the same
   DNS server. Runs alternate between the two; after a Postfix run the rig waits (untimed) until
   Postfix has handed its queue to the sink, so neither run competes with the other's leftovers.
2. Idle connections: resident memory of a fresh mxrelay before and after 1,000 clients have
   connected and said EHLO, then nothing.
3. Random-domain flood: 100,000 RCPTs to distinct random names under a TLD where every
   name is NXDOMAIN; resident memory and `mxrelay_dns_cache_entries` afterwards, against
   MXRELAY_DNS_CACHE_SIZE.

The sizes are a `Plan`; `run()` uses the issue's, tests use small ones.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
import string
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bench.figures import Row, format_facts, format_table, metric_value, ratio_line
from bench.rig import (
    DOMAIN,
    FLOOD_TLD,
    LOOPBACK,
    METRICS_PORT,
    POSTFIX_PORT,
    RELAY_PORT,
    Rig,
    RigError,
    Service,
    SourceLoad,
)

IDLE_RSS_TARGET = 150 * 1024 * 1024
FLOOD_WINDOW = 10  # RCPTs written before reading their replies (PIPELINING)
FLOOD_PER_TRANSACTION = 100
FLOOD_ERROR_LIMIT = 1000  # MXRELAY_SMTP_ERROR_LIMIT for the flood: refused RCPTs count as errors
FLOOD_PER_CONNECTION = 900  # RCPTs per connection, below that limit
REPLY_TIMEOUT = 30.0
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of each measurement; the defaults are the issue's."""

    messages: int = 5000
    runs: int = 3
    sessions: tuple[int, ...] = (20, 1)
    warm_up: int = 200
    idle_connections: int = 1000
    flood_recipients: int = 100_000
    flood_sessions: int = 20
    cache_size: int = 10_000  # MXRELAY_DNS_CACHE_SIZE, its default
    seed: int = 2


def run(plan: Plan = Plan()) -> None:
    with Rig() as rig:
        dns = rig.start_dns()
        rig.start_sink()
        print(throughput(rig, plan, dns), end="\n\n", flush=True)
        print(idle_connections(rig, plan), end="\n\n", flush=True)
        print(flood(rig, plan), flush=True)


# --- 1. throughput ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    port: int
    service: Service
    queued: bool  # answers before delivering: CPU is counted until its queue is empty


@dataclass(slots=True)
class Runs:
    """One target's figures at one session count, a value per run."""

    rate: list[float] = field(default_factory=list)  # messages/s
    cpu: list[float] = field(default_factory=list)  # ms/message, the target's processes
    dns: list[float] = field(default_factory=list)  # ms/message, the DNS server


def throughput(rig: Rig, plan: Plan, dns: Service) -> str:
    targets = (
        Target("mxrelay passthrough", RELAY_PORT, rig.start_relay(), queued=False),
        Target("postfix relay", POSTFIX_PORT, rig.start_postfix(), queued=True),
    )
    for target in targets:  # start Postfix's daemons, fill mxrelay's cache and upstream pool
        rig.run(SourceLoad(plan.warm_up, max(plan.sessions)).argv(LOOPBACK, target.port))
    rig.wait_postfix_idle()
    rates: list[Row] = []
    cpu: list[Row] = []
    rate_ratios: list[str] = []
    cpu_ratios: list[str] = []
    for sessions in plan.sessions:
        load = SourceLoad(plan.messages, sessions)
        runs = {target.label: Runs() for target in targets}
        for _ in range(plan.runs):  # alternating, so both see the same machine
            for target in targets:
                _measure(rig, load, target, dns, runs[target.label])
        suffix = f", {sessions} sess."
        rate_rows = [Row(t.label + suffix, tuple(runs[t.label].rate)) for t in targets]
        cpu_rows = [Row(t.label + suffix, tuple(runs[t.label].cpu)) for t in targets]
        dns_rows = [
            Row(f"DNS server, {t.label} runs{suffix}", tuple(runs[t.label].dns)) for t in targets
        ]
        rates += rate_rows
        cpu += cpu_rows + dns_rows
        relay_rate, postfix_rate = rate_rows
        relay_cpu, postfix_cpu = cpu_rows
        rate_ratios.append(
            ratio_line(f"mxrelay / postfix{suffix}", relay_rate, postfix_rate, target=1.0)
        )
        cpu_ratios.append(ratio_line(f"postfix / mxrelay{suffix}", postfix_cpu, relay_cpu))
    for target in targets:
        rig.stop(target.service)
    title = (
        f"front door: {plan.messages} messages of {SourceLoad(1, 1).size} bytes from "
        f"smtp-source, median of {plan.runs}"
    )
    cpu_title = "front door: CPU time per message of each relay's processes, and of the DNS server"
    return "\n\n".join(
        [
            format_table(title, "messages/s", rates, rate_ratios),
            format_table(cpu_title, "ms/message, lower is better", cpu, cpu_ratios),
        ]
    )


def _measure(rig: Rig, load: SourceLoad, target: Target, dns: Service, runs: Runs) -> None:
    cpu_before, dns_before = rig.cpu_seconds(target.service), rig.cpu_seconds(dns)
    elapsed, _ = rig.run(load.argv(LOOPBACK, target.port))
    if target.queued:
        rig.wait_postfix_idle()  # its deliveries count towards its CPU, not its time
    runs.rate.append(load.messages / elapsed)
    runs.cpu.append((rig.cpu_seconds(target.service) - cpu_before) * 1000 / load.messages)
    runs.dns.append((rig.cpu_seconds(dns) - dns_before) * 1000 / load.messages)


# --- 2. idle connections ---------------------------------------------------------------------


def idle_connections(rig: Rig, plan: Plan) -> str:
    count = plan.idle_connections
    limits = str(count * 2)
    relay = rig.start_relay(
        {"MXRELAY_SMTP_CONNECTION_LIMIT": limits, "MXRELAY_SMTP_CLIENT_CONNECTION_LIMIT": limits}
    )
    rig.run(SourceLoad(plan.warm_up, 1).argv(LOOPBACK, RELAY_PORT))  # as in service: cache, pool
    before = rig.memory(relay)
    with _idle_clients(rig, count):
        during = rig.memory(relay)
        active = metric_value(
            rig.http_get(METRICS_PORT, "/metrics")[1], "mxrelay_smtp_sessions_active"
        )
    rig.stop(relay)
    per_connection = (during - before) / count
    verdict = "met" if during < IDLE_RSS_TARGET else "MISSED"
    title = f"front door: mxrelay resident memory (VmRSS) with {count} idle connections"
    facts = [
        (f"after start-up and {plan.warm_up} messages", f"{before / MIB:.1f} MiB"),
        (
            f"with {count} connections after EHLO",
            f"{during / MIB:.1f} MiB (target < {IDLE_RSS_TARGET / MIB:.0f} MiB: {verdict})",
        ),
        ("per idle connection", f"{per_connection / 1024:.1f} KiB"),
        ("mxrelay_smtp_sessions_active", f"{active:.0f}"),
    ]
    return format_facts(title, facts)


@contextlib.contextmanager
def _idle_clients(rig: Rig, count: int) -> Iterator[list[socket.socket]]:
    """`count` sockets that connected and said EHLO, closed on exit."""
    clients: list[socket.socket] = []
    try:
        with rig.inside():
            for _ in range(count):
                client = socket.create_connection((LOOPBACK, RELAY_PORT), timeout=REPLY_TIMEOUT)
                clients.append(client)
                _expect(client, 220)
                client.sendall(f"EHLO idle.{DOMAIN}\r\n".encode())
                _expect(client, 250)
        yield clients
    finally:
        for client in clients:
            client.close()


def _expect(client: socket.socket, code: int) -> None:
    """Read one (possibly multi-line) reply; it must have `code`."""
    data = b""
    while True:
        chunk = client.recv(4096)
        if not chunk:
            raise RigError(f"connection closed while waiting for {code}")
        data += chunk
        last = data.rstrip(b"\r\n").rpartition(b"\n")[2]
        if data.endswith(b"\r\n") and last[3:4] == b" ":
            break
    if int(last[:3]) != code:
        raise RigError(f"expected {code}, got {data.decode(errors='replace').strip()}")


# --- 3. random-domain flood ------------------------------------------------------------------


def random_domains(rng: random.Random, count: int, tld: str = FLOOD_TLD) -> list[str]:
    """`count` distinct names of 12 random letters under `tld`."""
    seen: dict[str, None] = {}  # insertion-ordered set
    while len(seen) < count:
        seen["".join(rng.choices(string.ascii_lowercase, k=12)) + f".{tld}"] = None
    return list(seen)


@dataclass(frozen=True, slots=True)
class FloodResult:
    replies: dict[int, int]
    seconds: float


def flood(rig: Rig, plan: Plan) -> str:
    relay = rig.start_relay(
        {
            "MXRELAY_DNS_CACHE_SIZE": str(plan.cache_size),
            "MXRELAY_SMTP_ERROR_LIMIT": str(FLOOD_ERROR_LIMIT),
            "MXRELAY_SMTP_SOFT_ERROR_LIMIT": str(FLOOD_ERROR_LIMIT),
        }
    )
    before, cpu_before = rig.memory(relay), rig.cpu_seconds(relay)
    domains = random_domains(random.Random(plan.seed), plan.flood_recipients)
    with rig.inside():
        result = asyncio.run(_flood(domains, plan.flood_sessions))
    after, peak = rig.memory(relay), rig.memory(relay, "VmHWM")
    cpu_per_rcpt = (rig.cpu_seconds(relay) - cpu_before) * 1000 / len(domains)
    page = rig.http_get(METRICS_PORT, "/metrics")[1]
    entries = metric_value(page, "mxrelay_dns_cache_entries")
    evictions = metric_value(page, "mxrelay_dns_cache_evictions_total")
    lookups = metric_value(page, "mxrelay_dns_lookups_total")
    rig.stop(relay)
    replies = ", ".join(f"{code}: {n}" for code, n in sorted(result.replies.items()))
    within = "within bound" if entries <= plan.cache_size else "OVER BOUND"
    title = (
        f"front door: {len(domains)} RCPTs to distinct random non-existent domains, "
        f"{plan.flood_sessions} sessions, mxrelay passthrough"
    )
    facts = [
        ("replies by code", replies),
        ("duration", f"{result.seconds:.1f} s ({len(domains) / result.seconds:.0f} RCPT/s)"),
        ("mxrelay CPU per RCPT", f"{cpu_per_rcpt:.2f} ms"),
        (
            "VmRSS before / after, VmHWM",
            f"{before / MIB:.1f} / {after / MIB:.1f} MiB, {peak / MIB:.1f} MiB",
        ),
        (
            "mxrelay_dns_cache_entries",
            f"{entries:.0f} (MXRELAY_DNS_CACHE_SIZE={plan.cache_size}: {within})",
        ),
        ("cache evictions, DNS lookups", f"{evictions:.0f}, {lookups:.0f}"),
    ]
    return format_facts(title, facts)


async def _flood(domains: Sequence[str], sessions: int) -> FloodResult:
    replies: collections.Counter[int] = collections.Counter()
    shares = [domains[i::sessions] for i in range(sessions)]
    started = time.perf_counter()
    async with asyncio.timeout(len(domains) / 50 + 60):  # well below any plausible rate
        await asyncio.gather(*(_flood_session(share, replies) for share in shares))
    return FloodResult(dict(replies), time.perf_counter() - started)


async def _flood_session(domains: Sequence[str], replies: collections.Counter[int]) -> None:
    """One flooding client: a new connection every FLOOD_PER_CONNECTION recipients, since every
    refused RCPT counts toward the relay's error limit, as in Postfix."""
    for share in _chunks(domains, FLOOD_PER_CONNECTION):
        await _flood_connection(share, replies)


async def _flood_connection(domains: Sequence[str], replies: collections.Counter[int]) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, RELAY_PORT)
    try:
        await _reply(reader, 220)
        writer.write(f"EHLO flood.{DOMAIN}\r\n".encode())
        await _reply(reader, 250)
        for transaction in _chunks(domains, FLOOD_PER_TRANSACTION):
            writer.write(f"MAIL FROM:<flood@{DOMAIN}>\r\n".encode())
            await _reply(reader, 250)
            for window in _chunks(transaction, FLOOD_WINDOW):
                writer.write(b"".join(f"RCPT TO:<user@{d}>\r\n".encode() for d in window))
                for _ in window:
                    replies[await _reply(reader)] += 1
            writer.write(b"RSET\r\n")
            await _reply(reader, 250)
        writer.write(b"QUIT\r\n")
        await _reply(reader, 221)
    finally:
        writer.close()
        await writer.wait_closed()


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _reply(reader: asyncio.StreamReader, expected: int | None = None) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise RigError("mxrelay closed the connection during the flood")
        if line[3:4] != b"-":
            break
    code = int(line[:3])
    if expected is not None and code != expected:
        raise RigError(f"expected {expected}, got {line.decode(errors='replace').strip()}")
    return code
