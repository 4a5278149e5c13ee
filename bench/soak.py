"""Soak: `mxrelay serve` in smtp mode under a steady load for 20 minutes, watched from outside.

There is no peer here: the figures to compare are the relay's own, over time. A real `mxrelay
serve` process (SQLite store in a temporary directory, its delivery child process) relays to a
sink on loopback, resolving recipient domains through the test DNS server; each runs as a process
of its own, started and stopped by its PID:

- the DNS server (`python -m tests.support.dns_server`) serves the front-door rig's zone: the
  recipients' domain with an MX, and a TLD where every name is NXDOMAIN. About 10 % of the
  recipients are in distinct random domains under that TLD, so they get 550 at RCPT (and cost
  the relay a lookup each, and its verdict cache an entry);
- the sink (`python -m bench.soak sink`, aiosmtpd) answers 450 at RCPT the first time it sees one
  of about 1 % of the addresses, chosen by a hash of the address (`deferred_first`), and 250 the
  next time: those deliveries are deferred and retried (`MXRELAY_RETRY_INITIAL` is a few seconds);
- the load generator, in this process, opens one SMTP session per message at a fixed rate (50 a
  second by default; at most IN_FLIGHT at once, later ones start late and the lag is reported),
  and every 15 seconds (`Plan.hostile_every`) sends one of the hostile messages of `HOSTILE`
  instead (they may be refused: what each got is counted by reply). Each
  message's acceptance latency is the time from writing the final "." to reading the reply.

Every second a sampler reads the resident memory and open file descriptors of the relay and of its
delivery child (/proc) and the queue gauges (`mxrelay_queue_entries`, refreshed by the relay every
few seconds). When the load stops, the soak waits (at most `Plan.drain_timeout`) until the queue holds
nothing waiting and the sink has every accepted recipient, idles a few seconds and takes the last
sample; then the relay is stopped with SIGTERM (its exit status is reported).

`python -m bench soak` runs it for 20 minutes at 50 messages a second; MXRELAY_SOAK_SECONDS and
MXRELAY_SOAK_RATE shorten or change that (the names are read only here, never by the relay).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import select
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from aiosmtpd.smtp import SMTP
from prometheus_client.parser import text_string_to_metric_families
from tests.support.processes import ServeProcess

from bench.figures import (
    busy_share,
    cpu_ticks,
    format_facts,
    metric_value,
    process_cpu,
    status_bytes,
)
from bench.rig import (
    DOMAIN,
    FLOOD_TLD,
    LOOPBACK,
    MX_ADDRESS,
    REPO,
    RigError,
    terminate,
    zone_text,
)
from mxrelay.model import QueueState
from mxrelay.runtime.queued import STATS_INTERVAL

MIB = 1024 * 1024
SENDER = f"app@{DOMAIN}"
EHLO_NAME = f"soak.{DOMAIN}"
IN_FLIGHT = 40
"""Sessions open at once, at most: below MXRELAY_SMTP_CLIENT_CONNECTION_LIMIT (50)."""
TRANSACTION_TIMEOUT = 300.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
SINK_STATUS_EVERY = 0.25
WAITING_STATES = ("queued", "active", "deferred")
"""The queue's states that drain by themselves; held and dead entries stay."""
FD_SLACK = 4
"""File descriptors the relay may hold after the drain beyond what it held before the load, not
counting its connections to the sink (its pool of upstream connections)."""
UPSTREAM_POOL = 32
"""MXRELAY_UPSTREAM_IDLE_CONNECTIONS, its default: upstream connections kept for reuse."""
RSS_SLACK = (5 * MIB, 0.05)
"""Growth over the second half of the load that still counts as steady: 5 MiB or 5 %."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The soak's size; the defaults are the issue's (20 minutes, 10 % refused, 1 % deferred)."""

    seconds: float = 1200.0
    rate: float = 50.0
    """Messages (SMTP sessions) started per second."""
    hostile_every: float = 15.0
    """Seconds between hostile messages, which take the place of a normal one."""
    refused_share: float = 0.10
    deferred_share: float = 0.01
    row_every: float = 60.0
    """Seconds per row of the table over time."""
    sample_every: float = 1.0
    retry_initial: str = "5s"
    retry_max: str = "30s"
    drain_timeout: float = 600.0
    idle_after_drain: float = 8.0
    """Seconds the relay idles after the drain before the last sample: longer than
    MXRELAY_UPSTREAM_IDLE_TIMEOUT (5 s). Its pool closes an expired connection only when it next
    looks for one, so the connections to the sink are counted apart (`Sample.upstream`)."""
    seed: int = 10

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Plan:
        """The default plan, with MXRELAY_SOAK_SECONDS (10 to 86400) and MXRELAY_SOAK_RATE (0.1
        to 1000 messages a second) when set."""
        default = cls()
        seconds = _bounded(environ, "MXRELAY_SOAK_SECONDS", default.seconds, 10, 86400)
        rate = _bounded(environ, "MXRELAY_SOAK_RATE", default.rate, 0.1, 1000)
        return cls(seconds=seconds, rate=rate)


def _bounded(
    environ: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a number from {low:g} to {high:g}") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={text!r}: expected a number from {low:g} to {high:g}")
    return value


# --- what is sent ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: str
    """"normal", or the name of a hostile message."""
    recipients: tuple[str, ...]
    data: bytes


def deferred_first(address: str, share: float) -> bool:
    """Whether the sink answers 450 the first time it sees `address`: a hash of the address, so
    the load generator and the sink (another process) agree without talking."""
    return zlib.crc32(address.lower().encode()) % 10_000 < share * 10_000


def random_domain(rng: random.Random) -> str:
    """A name under the TLD where every name is NXDOMAIN."""
    return "".join(rng.choices(string.ascii_lowercase, k=12)) + f".{FLOOD_TLD}"


def _message(
    seq: int,
    recipients: Sequence[str],
    headers: str = "",
    body: str = "",
    sender: str = f"Soak <{SENDER}>",
) -> bytes:
    """A message of about 2 KiB; `headers` replace the Subject and Content-Type lines."""
    crlf = "\r\n"
    headers = headers or f"Subject: soak message {seq}{crlf}Content-Type: text/plain{crlf}"
    body = body or f"A line of body text, about fifty bytes long, to fill it.{crlf}" * 40
    text = (
        f"From: {sender}{crlf}To: {', '.join(recipients[:3])}{crlf}"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000{crlf}Message-ID: <soak-{seq}@{DOMAIN}>{crlf}"
        f"MIME-Version: 1.0{crlf}{headers}{crlf}"
        f"{body}"
    )
    return text.encode("utf-8", "surrogateescape")


def normal(seq: int, rng: random.Random, refused_share: float) -> Envelope:
    """One to three recipients (mostly one); each in a non-existent domain with `refused_share`."""
    recipients = [
        f"u{seq}-{k}@{random_domain(rng) if rng.random() < refused_share else DOMAIN}"
        for k in range(rng.choice((1, 1, 2, 3)))
    ]
    return Envelope("normal", tuple(recipients), _message(seq, recipients))


def deep_mime(seq: int) -> Envelope:
    """1,000 nested multipart/mixed parts (Python's parser recurses per level)."""
    depth = 1000
    opening = "".join(
        f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'
        for i in range(depth)
    )
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth + 1)))
    body = opening + f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n" + closing
    return _hostile("deep MIME nest", seq, 'Content-Type: multipart/mixed; boundary="b0"\r\n', body)


def encoded_words(seq: int) -> Envelope:
    """A Subject of 4,000 RFC 2047 encoded words (56 KiB), folded 10 to a line."""
    words = ["=?utf-8?q?=C3=A9t=C3=A9?="] * 4000
    lines = [" ".join(words[i : i + 10]) for i in range(0, len(words), 10)]
    return _hostile("encoded-word run", seq, "Subject: " + "\r\n ".join(lines) + "\r\n")


def utf7_body(seq: int) -> Envelope:
    """A text part in utf-7 whose decoding gives lone surrogates."""
    header = "Subject: utf-7 body\r\nContent-Type: text/plain; charset=utf-7\r\n"
    return _hostile("utf-7 body", seq, header, "Hi +2D3cAA- and +2D0- there\r\n" * 20)


def nul_subject(seq: int) -> Envelope:
    return _hostile("NUL in Subject", seq, "Subject: before\x00after\r\n")


def huge_header(seq: int) -> Envelope:
    """One header line of 1 MiB (message lines are not limited; the size limit is 25 MiB)."""
    return _hostile("1 MiB header line", seq, f"Subject: long\r\nX-Long: {'a' * MIB}\r\n")


def nested_comments(seq: int) -> Envelope:
    """A From: with 5,000 nested comments (the header parser recurses per level)."""
    comment = "(" * 5000 + "c" + ")" * 5000
    sender = f"{comment} {SENDER}"
    return _hostile("nested comments", seq, "Subject: comments\r\n", sender=sender)


def refused_flood(seq: int) -> Envelope:
    """3,000 RCPTs to non-existent domains (20 of them, so the lookups are cached) after one good
    recipient, then the message for the good one."""
    rng = random.Random(seq)
    domains = [random_domain(rng) for _ in range(20)]
    refused = [f"x{i}@{domains[i % len(domains)]}" for i in range(3000)]
    good = f"h{seq}@{DOMAIN}"
    data = _message(seq, [good], "Subject: many refused recipients\r\n")
    return Envelope("3,000 refused RCPTs", (good, *refused), data)


def _hostile(
    kind: str, seq: int, headers: str, body: str = "", sender: str = f"Soak <{SENDER}>"
) -> Envelope:
    recipient = f"h{seq}@{DOMAIN}"
    return Envelope(kind, (recipient,), _message(seq, [recipient], headers, body, sender))


HOSTILE: tuple[Callable[[int], Envelope], ...] = (
    deep_mime,
    encoded_words,
    utf7_body,
    nul_subject,
    huge_header,
    nested_comments,
    refused_flood,
)
"""Sent in turn, one every `Plan.hostile_every` seconds."""


# --- the sink (a child process) --------------------------------------------------------------


@dataclass(slots=True)
class SinkState:
    """What the sink saw: distinct recipients delivered, recipients answered 450 first, and
    recipients that arrived more than once (a duplicate delivery)."""

    share: float
    messages: int = 0
    delivered: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    duplicates: int = 0

    def status(self) -> SinkStatus:
        return SinkStatus(
            self.messages,
            len(self.delivered),
            len(self.deferred),
            len(self.deferred & self.delivered),
            self.duplicates,
        )


@dataclass(frozen=True, slots=True)
class SinkStatus:
    messages: int = 0
    recipients: int = 0
    deferred: int = 0
    deferred_delivered: int = 0
    duplicates: int = 0


class SinkHandler:
    """aiosmtpd handler: 450 at RCPT once for the addresses `deferred_first` picks, 250 else."""

    def __init__(self, state: SinkState) -> None:
        self.state = state

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        state = self.state
        if deferred_first(address, state.share) and address not in state.deferred:
            state.deferred.add(address)
            return "450 4.2.1 soak sink: try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        state = self.state
        state.messages += 1
        for address in envelope.rcpt_tos:
            if address in state.delivered:
                state.duplicates += 1
            state.delivered.add(address)
        return f"250 2.0.0 Ok: queued as S{state.messages}"


class LongLineSMTP(SMTP):
    """aiosmtpd refuses message lines over 1,001 bytes (RFC 5321's limit); Postfix, the usual
    smarthost, passes them. The soak tests the relay, not the sink, so the sink takes 2 MiB."""

    line_length_limit = 2 * MIB


async def serve_sink(status_path: Path, share: float) -> None:
    """Serve on 127.0.0.1 (a free port, printed), writing the status file until SIGTERM."""
    state = SinkState(share)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: LongLineSMTP(SinkHandler(state), hostname=f"sink.{DOMAIN}"), LOOPBACK, 0
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening on {LOOPBACK}:{port}\n")
    sys.stdout.flush()
    written: SinkStatus | None = None
    while True:
        status = state.status()
        if status != written:
            temporary = status_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(asdict(status)))
            temporary.replace(status_path)
            written = status
        if stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SINK_STATUS_EVERY)
    server.close()


def read_sink_status(path: Path) -> SinkStatus:
    try:
        return SinkStatus(**json.loads(path.read_text()))
    except (OSError, ValueError):
        return SinkStatus()


# --- the load generator's SMTP client --------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """One message: when it was started (seconds into the load), what it got, and its latency."""

    kind: str
    started: float
    lag: float = 0.0
    """How much later than scheduled it started (all IN_FLIGHT sessions were busy)."""
    refused_planned: int = 0
    """Recipients in non-existent domains, which should get 550 at RCPT."""
    rcpt: collections.Counter[int] = field(default_factory=collections.Counter)
    accepted: int = 0
    """Recipients the relay took with the message (its RCPTs that got 250, if DATA got 250)."""
    deferred: int = 0
    """Of those, the ones the sink defers the first time."""
    result: str = ""
    """The reply code to the end of DATA ("250", "451"...), or what ended the session first."""
    latency: float | None = None
    reply: str = ""
    """The text of the reply that decided `result`, when it was not a 250."""
    dot_at: float | None = None
    """Seconds into the load when the final "." was written."""


class Closed(Exception):
    """The relay closed the connection."""


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise Closed
        lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        if line[3:4] != b"-":
            return int(lines[-1][:3]), "\n".join(lines)


async def send(port: int, envelope: Envelope, outcome: Outcome, deferred_share: float) -> None:
    """One SMTP session for `envelope`, recording every reply into `outcome`.

    Written on asyncio streams rather than with aiosmtplib so that the latency is exactly from
    the final "." to the reply (aiosmtplib writes the body and the "." in one call), and so that
    every RCPT's reply and a connection the relay closes midway are recorded as they are."""
    stage = "connect"
    try:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
    except OSError as exc:
        outcome.result = f"{type(exc).__name__} at connect"
        return

    last = ""  # the text of the latest reply

    async def command(line: str) -> int:
        nonlocal last
        writer.write(line.encode() + b"\r\n")
        code, last = await _reply(reader)
        return code

    session_start = time.perf_counter()

    try:
        async with asyncio.timeout(TRANSACTION_TIMEOUT):
            stage = "greeting"
            code, last = await _reply(reader)
            if code != 220:
                outcome.result, outcome.reply = f"greeting {code}", last
                return
            stage = "EHLO"
            await command(f"EHLO {EHLO_NAME}")
            stage = "MAIL"
            if (code := await command(f"MAIL FROM:<{SENDER}> SIZE={len(envelope.data)}")) != 250:
                outcome.result, outcome.reply = f"MAIL {code}", last
                return
            stage = "RCPT"
            accepted = []
            for recipient in envelope.recipients:
                code = await command(f"RCPT TO:<{recipient}>")
                outcome.rcpt[code] += 1
                if (
                    code == 421
                ):  # the relay ends the session (its error limit): stop as a client must
                    outcome.result, outcome.reply = "RCPT 421", last
                    return
                if code == 250:
                    accepted.append(recipient)
            if not accepted:
                outcome.result = "every RCPT refused"
                await command("QUIT")
                return
            stage = "DATA"
            if (code := await command("DATA")) != 354:
                outcome.result, outcome.reply = f"DATA {code}", last
                return
            writer.write(re.sub(rb"(?m)^\.", b"..", envelope.data))
            await writer.drain()
            stage = "end of DATA"
            started = time.perf_counter()
            outcome.dot_at = outcome.started + started - session_start
            writer.write(b".\r\n")
            code, reply = await _reply(reader)
            outcome.latency = time.perf_counter() - started
            outcome.result = str(code)
            if code == 250:
                outcome.accepted = len(accepted)
                outcome.deferred = sum(deferred_first(r, deferred_share) for r in accepted)
            else:
                outcome.reply = reply
            await command("QUIT")
    except Closed:
        if not outcome.result:
            outcome.result, outcome.reply = f"closed at {stage}", last
    except TimeoutError:
        outcome.result = f"timeout at {stage}"
    except OSError as exc:
        outcome.result = f"{type(exc).__name__} at {stage}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# --- sampling --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the relay: seconds into the load (negative before it); resident memory, open
    descriptors and CPU seconds so far of the accepting process and of its delivery child; the
    queue gauges."""

    at: float
    rss: tuple[int, int]
    fds: tuple[int, int]
    cpu: tuple[float, float]
    upstream: int
    """Of the descriptors, connections to the sink (the delivery process's pool)."""
    queue: Mapping[str, float]

    @property
    def waiting(self) -> float:
        return sum(self.queue.get(state, 0.0) for state in WAITING_STATES)


def rss_of(pid: int, field_name: str = "VmRSS") -> int:
    try:
        return status_bytes(Path(f"/proc/{pid}/status").read_text(), field_name)
    except (OSError, ValueError):  # exited
        return 0


def fds_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def upstream_connections(pids: Sequence[int], port: int) -> int:
    """Descriptors of these processes that are TCP connections to 127.0.0.1:`port`."""
    inodes = set()
    sockets = []
    for pid in pids:
        try:
            table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # exited
            continue
        for fd in fds:
            with contextlib.suppress(OSError):  # closed since the listing
                sockets.append(os.readlink(fd))
        for line in table:  # sl local remote state ... inode (the 10th field)
            fields = line.split()
            if int(fields[2].partition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    return sum(target in inodes for target in sockets)


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=10) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def queue_gauges(text: str) -> dict[str, float]:
    gauges: dict[str, float] = {}
    for state in QueueState:
        with contextlib.suppress(KeyError):
            gauges[state] = metric_value(text, "mxrelay_queue_entries", {"state": state})
    return gauges


def metric_breakdown(text: str, name: str, label: str) -> dict[str, float]:
    """The samples of `name` summed by the value of one label."""
    totals: dict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                totals[sample.labels.get(label, "")] += sample.value
    return dict(totals)


# --- figures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` percent of the values at or below."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour; 0 with fewer than two times."""
    if len({t for t, _ in points}) < 2:
        return 0.0
    times, values = zip(*points, strict=True)
    return statistics.linear_regression(times, values).slope * 3600


@dataclass(frozen=True, slots=True)
class Drain:
    seconds: float | None
    """From the end of the load (its last session ended) until the sink had every accepted
    recipient, confirmed by a queue gauge showing nothing waiting; None if that did not happen
    within the drain timeout."""
    left: Mapping[str, float]
    """The queue gauges at the end."""


@dataclass(frozen=True)
class Report:
    plan: Plan
    load_seconds: float
    outcomes: Sequence[Outcome]
    samples: Sequence[Sample]
    before: Sample
    after: Sample
    drain: Drain
    sink: SinkStatus
    peak_rss: tuple[int, int]
    busy: float
    """Per cent of the machine's CPU time in use during the load, by every process."""
    generator_cpu: float
    """Per cent of one CPU this process (load generator and sampler) used during the load."""
    metrics: str
    relay_exit: int | None = None
    log_bytes: int = 0

    @property
    def normal(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "normal"]

    @property
    def accepted_recipients(self) -> int:
        return sum(o.accepted for o in self.outcomes)

    @property
    def deferred_expected(self) -> int:
        return sum(o.deferred for o in self.outcomes)

    def rss_growth(self) -> tuple[float, float, bool]:
        """(MiB/h over the second half of the load, MiB grown over it, steady?)."""
        half = self.load_seconds / 2
        points = [
            (s.at, sum(s.rss) / MIB) for s in self.samples if half <= s.at <= self.load_seconds
        ]
        slope = slope_per_hour(points)
        grown = slope * half / 3600
        mean = statistics.fmean(v for _, v in points) if points else 0.0
        return slope, grown, grown <= max(RSS_SLACK[0] / MIB, RSS_SLACK[1] * mean)

    def fds_steady(self) -> bool:
        """Descriptors after the drain, the upstream pool aside, within FD_SLACK of those before
        the load, and the pool within its bound."""
        before = sum(self.before.fds) - self.before.upstream
        after = sum(self.after.fds) - self.after.upstream
        return after <= before + FD_SLACK and self.after.upstream <= UPSTREAM_POOL


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def _latencies(outcomes: Sequence[Outcome]) -> list[float]:
    return [o.latency for o in outcomes if o.latency is not None and o.result == "250"]


def _mib(rss: tuple[int, int]) -> str:
    """Accepting process + delivery process."""
    return f"{rss[0] / MIB:.1f} + {rss[1] / MIB:.1f}"


def _nonzero(values: Mapping[str, float], exclude: str = "") -> dict[str, int]:
    return {key: int(value) for key, value in values.items() if value and key != exclude}


def _codes(counter: Mapping[str, int] | collections.Counter[Any]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in sorted(counter.items())) or "-"


def over_time(report: Report) -> str:
    """One row per `row_every` seconds of load: messages, latency, memory, descriptors, queue."""
    step = report.plan.row_every
    rows = math.ceil(report.plan.seconds / step)
    header = (
        f"{'until':>6} {'sent':>6} {'250':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'CPU %':>11} {'RSS MiB':>15} {'fds':>9} {'queued/active/deferred':>23}"
    )
    lines = [
        "over time: normal messages started in each interval, latency of their 250s (final '.' to "
        "reply), CPU use over the interval (% of one CPU), and at the interval's end RSS and fds "
        "(each: accepting process + delivery process) and the queue gauges",
        header,
    ]
    for row in range(rows):
        start, end = row * step, min((row + 1) * step, report.plan.seconds)
        last = row == rows - 1  # with the sessions that started late, after the planned end
        started = [o for o in report.normal if start <= o.started and (last or o.started < end)]
        latencies = _latencies(started)
        sample, previous = _last_before(report.samples, end), _last_before(report.samples, start)
        elapsed = max(sample.at - previous.at, 1e-9)
        used = zip(previous.cpu, sample.cpu, strict=True)
        cpu = " + ".join(f"{(b - a) / elapsed * 100:.0f}" for a, b in used)
        queue = "/".join(f"{sample.queue.get(s, math.nan):.0f}" for s in WAITING_STATES)
        rss = _mib(sample.rss)
        lines.append(
            f"{_clock(end):>6} {len(started):>6} "
            f"{sum(o.result == '250' for o in started):>6} "
            f"{_ms(percentile(latencies, 50)):>8} {_ms(percentile(latencies, 99)):>8} "
            f"{_ms(max(latencies, default=math.nan)):>8} {cpu:>11} {rss:>15} "
            f"{f'{sample.fds[0]} + {sample.fds[1]}':>9} {queue:>23}"
        )
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    """Minutes and seconds into the load: `12:00`."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _last_before(samples: Sequence[Sample], at: float) -> Sample:
    earlier = [s for s in samples if s.at <= at]
    return earlier[-1] if earlier else samples[0]


def hostile_table(report: Report) -> str:
    by_kind: dict[str, list[Outcome]] = collections.defaultdict(list)
    for outcome in report.outcomes:
        if outcome.kind != "normal":
            by_kind[outcome.kind].append(outcome)
    lines = ["hostile messages: what each kind got (reply to the end of DATA, or what ended it)"]
    width = max((len(kind) for kind in by_kind), default=4)
    for kind, outcomes in by_kind.items():
        results = collections.Counter(_label(o) for o in outcomes)
        rcpt: collections.Counter[int] = collections.Counter()
        for o in outcomes:
            rcpt.update(o.rcpt)
        latency = max((o.latency for o in outcomes if o.latency is not None), default=math.nan)
        extra = f"; RCPT replies {_codes(rcpt)}" if sum(rcpt.values()) > len(outcomes) else ""
        lines.append(
            f"{kind.ljust(width)}  {len(outcomes)} sent: {_codes(results)}; "
            f"slowest reply {_ms(latency)} ms{extra}"
        )
    if not by_kind:
        lines.append("none sent")
    return "\n".join(lines)


def _label(outcome: Outcome) -> str:
    """The result with the first line of the reply that decided it, if that was not a 250."""
    first = outcome.reply.partition("\n")[0]
    if first[:3] == outcome.result:
        first = first[4:]
    return f"{outcome.result} ({first})" if first else outcome.result


NEAR_HOSTILE = 2.0
"""Seconds: a message whose end of DATA was this close to a hostile one's is counted as near it."""


def _not_accepted(report: Report) -> str:
    """The normal messages that got something other than 250 at the end of DATA (or lost their
    session), by reply text, and how many of them were near a hostile message's end of DATA."""
    hostile = [
        (o.dot_at - NEAR_HOSTILE, o.dot_at + (o.latency or 0.0) + NEAR_HOSTILE, o.kind)
        for o in report.outcomes
        if o.kind != "normal" and o.dot_at is not None
    ]
    groups: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in report.normal:
        if o.result not in ("250", "every RCPT refused"):
            groups[_label(o)].append(o)
    parts = []
    for text, outcomes in sorted(groups.items()):
        near: collections.Counter[str] = collections.Counter()
        for o in outcomes:
            at = o.dot_at if o.dot_at is not None else o.started
            near.update({kind for low, high, kind in hostile if low <= at <= high})
        where = f", near a hostile message: {_codes(near)}" if near else ""
        parts.append(f"{len(outcomes)} × {text}{where}")
    return "; ".join(parts) or "none"


def summary(report: Report) -> str:
    normal = report.normal
    rcpt: collections.Counter[int] = collections.Counter()
    for o in normal:
        rcpt.update(o.rcpt)
    latencies = _latencies(normal)
    lags = [o.lag for o in report.outcomes]
    deliveries = metric_breakdown(report.metrics, "mxrelay_deliveries_total", "outcome")
    recipients = metric_breakdown(report.metrics, "mxrelay_smtp_recipients_total", "reason")
    failures = metric_breakdown(report.metrics, "mxrelay_store_commit_failures_total", "")
    sink = report.sink
    slope, grown, steady_rss = report.rss_growth()
    steady_fds = report.fds_steady()
    drain = report.drain
    facts = [
        ("messages started", f"{len(report.outcomes)} in {report.load_seconds:.0f} s "
         f"({len(report.outcomes) / report.load_seconds:.1f}/s), "
         f"{len(report.outcomes) - len(normal)} of them hostile; "
         f"started late by at most {max(lags, default=0.0):.2f} s"),
        ("normal messages", f"end of DATA or what ended them: "
         f"{_codes(collections.Counter(o.result for o in normal))}"),
        ("not accepted", _not_accepted(report)),
        ("their RCPT replies", f"{_codes(rcpt)}; {sum(o.refused_planned for o in normal)} "
         f"recipients in non-existent domains ({report.plan.refused_share:.0%} planned)"),
        ("acceptance latency", f"p50 {_ms(percentile(latencies, 50))} ms, p99 "
         f"{_ms(percentile(latencies, 99))} ms, max {_ms(max(latencies, default=math.nan))} ms "
         f"over {len(latencies)} 250s"),
        ("recipients accepted", f"{report.accepted_recipients} with a 250 to DATA"),
        ("delivered (sink)", f"{sink.recipients} distinct recipients in {sink.messages} "
         f"transactions, {sink.duplicates} duplicates"),
        ("deferred, then delivered", f"{sink.deferred_delivered} of {sink.deferred} answered 450 "
         f"first (expected {report.deferred_expected})"),
        ("relay's delivery attempts", _codes(_nonzero(deliveries))),
        ("relay's RCPT verdicts", _codes(_nonzero(recipients))),
        ("relay's failed commits", f"{_nonzero(failures).get('', 0)} group commits "
         "(mxrelay_store_commit_failures_total)"),
        ("drain", (f"{drain.seconds:.1f} s after the last session ended" if drain.seconds is not None
                   else f"NOT within {report.plan.drain_timeout:.0f} s")
         + f"; queue at the end: {_codes(_nonzero(drain.left, exclude='delivered'))} "
         f"(gauges refreshed every {STATS_INTERVAL:.0f} s)"),
        ("RSS (MiB)", f"{_mib(report.before.rss)} before the load, {_mib(report.after.rss)} "
         f"after the drain, peak (VmHWM) {_mib(report.peak_rss)}"),
        ("open fds", f"{report.before.fds[0]} + {report.before.fds[1]} before the load "
         f"({report.before.upstream} to the sink), {report.after.fds[0]} + "
         f"{report.after.fds[1]} after the drain ({report.after.upstream} to the sink)"),
        ("machine during the load", f"CPUs {report.busy:.0f} % busy (every process); the load "
         f"generator and sampler (this process) used {report.generator_cpu:.0f} % of one CPU"),
        ("relay log", f"{report.log_bytes / 1024:.0f} KiB at MXRELAY_LOG_LEVEL=warning"),
        ("relay exit", f"none within {STOP_TIMEOUT:.0f} s of SIGTERM (killed)"
         if report.relay_exit is None
         else f"status {report.relay_exit} after SIGTERM"),
    ]  # fmt: skip
    verdict = (
        f"leak verdict: RSS {'steady' if steady_rss else 'GROWING'} over the second half "
        f"({slope:+.1f} MiB/h, {grown:+.1f} MiB; steady below "
        f"{RSS_SLACK[0] // MIB} MiB or {RSS_SLACK[1]:.0%}), fds "
        f"{'steady' if steady_fds else 'GROWING'} ({sum(report.before.fds)} before, "
        f"{sum(report.after.fds)} after the drain, connections to the sink aside: steady within "
        f"+{FD_SLACK}, those at most {UPSTREAM_POOL})"
    )
    return f"{format_facts('counts', facts)}\n{verdict}"


def format_report(report: Report) -> str:
    plan = report.plan
    head = (
        f"soak: mxrelay serve (smtp mode, SQLite) for {plan.seconds:.0f} s at {plan.rate:g} "
        f"messages/s, one session each; {plan.refused_share:.0%} of recipients refused at RCPT, "
        f"{plan.deferred_share:.0%} deferred once by the sink (MXRELAY_RETRY_INITIAL="
        f"{plan.retry_initial}), a hostile message every {plan.hostile_every:g} s.\n"
        "No peer: the figures to compare are the relay's own, over time."
    )
    return "\n\n".join([head, over_time(report), hostile_table(report), summary(report)])


# --- the run ---------------------------------------------------------------------------------


def relay_environment(directory: Path, dns_port: int, sink_port: int, plan: Plan) -> dict[str, str]:
    """What `mxrelay serve` gets (ServeProcess adds the listeners and the host name)."""
    return {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_UPSTREAM": f"smtp://{LOOPBACK}:{sink_port}",
        "MXRELAY_DATABASE_URL": f"sqlite:///{directory / 'relay.db'}",
        "MXRELAY_DNS_SERVERS": f"{LOOPBACK}:{dns_port}",
        "MXRELAY_DNS_ROUTABLE_NETWORKS": f"{MX_ADDRESS}/32",
        "MXRELAY_RETRY_INITIAL": plan.retry_initial,
        "MXRELAY_RETRY_MAX": plan.retry_max,
        "MXRELAY_LOG_LEVEL": "warning",
    }


def start_listening(
    argv: Sequence[str], log: IO[bytes], timeout: float = START_TIMEOUT
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a program that prints `listening on 127.0.0.1:PORT` first; (process, PORT)."""
    environ = {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO,
        env=environ,
    )  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline().decode(errors="replace") if ready else ""
    match = re.search(r"listening on [\d.]+:(\d+)", line)
    if match is None:
        stop(process)
        raise RigError(f"{argv[2]} did not start: {line.strip() or 'no output'}")
    return process, int(match.group(1))


def stop(process: subprocess.Popen[bytes]) -> int:
    """`rig.terminate`, then the pipe it announced its port on is closed."""
    status = terminate(process)
    if process.stdout is not None:
        process.stdout.close()
    return status


class Soak:
    """The processes of one soak and what is measured while they run."""

    def __init__(self, plan: Plan, relay: ServeProcess, sink_port: int, sink_status: Path) -> None:
        self.plan = plan
        self.relay = relay
        self.sink_port = sink_port
        self.sink_status = sink_status
        self.samples: list[Sample] = []
        self.outcomes: list[Outcome] = []
        self.started = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.started

    def _alive(self) -> None:
        if self.relay.process.poll() is not None:
            tail = "\n".join(self.relay.log.splitlines()[-20:])
            raise RigError(f"mxrelay exited with {self.relay.process.returncode}:\n{tail}")

    async def sample(self) -> Sample:
        self._alive()
        pid, children = self.relay.process.pid, self.relay.children()
        _, text = await asyncio.to_thread(http_get, self.relay.metrics_port, "/metrics")
        sample = Sample(
            self.now(),
            (rss_of(pid), sum(rss_of(child) for child in children)),
            (fds_of(pid), sum(fds_of(child) for child in children)),
            (process_cpu(pid), sum(process_cpu(child) for child in children)),
            upstream_connections([pid, *children], self.sink_port),
            queue_gauges(text),
        )
        self.samples.append(sample)
        return sample

    async def sampler(self) -> None:
        while True:
            await asyncio.sleep(self.plan.sample_every - self.now() % self.plan.sample_every)
            await self.sample()

    async def load(self) -> float:
        """Start messages on schedule for `plan.seconds`; returns when the last one has ended."""
        plan, rng = self.plan, random.Random(self.plan.seed)
        slots = asyncio.Semaphore(IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        hostile = 0

        async def one(envelope: Envelope, outcome: Outcome) -> None:
            try:
                await send(self.relay.smtp_port, envelope, outcome, plan.deferred_share)
            finally:
                slots.release()

        for seq in range(math.floor(plan.seconds * plan.rate)):
            due = seq / plan.rate
            await asyncio.sleep(max(0.0, due - self.now()))
            await slots.acquire()
            if self.now() >= hostile * plan.hostile_every + plan.hostile_every:
                envelope = HOSTILE[hostile % len(HOSTILE)](seq)
                hostile += 1
            else:
                envelope = normal(seq, rng, plan.refused_share)
            outcome = Outcome(envelope.kind, self.now(), max(0.0, self.now() - due))
            outcome.refused_planned = sum(not r.endswith(f"@{DOMAIN}") for r in envelope.recipients)
            self.outcomes.append(outcome)
            task = asyncio.create_task(one(envelope, outcome))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if seq % 100 == 0:
                self._alive()
        loaded = max(self.now(), plan.seconds)
        if tasks:
            await asyncio.wait(tasks, timeout=TRANSACTION_TIMEOUT)
        return loaded

    async def drain(self, expected: int, since: float) -> Drain:
        """Until nothing waits in the queue (as of a gauge refreshed after `since`) and the sink
        has `expected` recipients, at most `plan.drain_timeout` seconds."""
        complete_at: float | None = None
        deadline = since + self.plan.drain_timeout
        fresh = since + STATS_INTERVAL + self.plan.sample_every
        while self.now() < deadline:
            sink = read_sink_status(self.sink_status)
            if complete_at is None and sink.recipients >= expected:
                complete_at = self.now()
            latest = self.samples[-1]
            if complete_at is not None and latest.at >= fresh and latest.waiting == 0:
                return Drain(complete_at - since, latest.queue)
            await asyncio.sleep(0.2)
        return Drain(None, self.samples[-1].queue)

    async def run(self) -> Report:
        self.started = time.monotonic() + 1.0
        before = await self.sample()
        sampler = asyncio.create_task(self.sampler())
        try:
            await asyncio.sleep(max(0.0, -self.now()))
            ticks, own = cpu_ticks(), process_cpu(os.getpid())
            load_seconds = await self.load()
            busy = busy_share(ticks, cpu_ticks())
            generator = (process_cpu(os.getpid()) - own) / load_seconds * 100
            last = self.now()
            accepted = sum(o.accepted for o in self.outcomes)
            drain = await self.drain(accepted, last)
            await asyncio.sleep(self.plan.idle_after_drain)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        after = await self.sample()
        _, metrics = await asyncio.to_thread(http_get, self.relay.metrics_port, "/metrics")
        pid, children = self.relay.process.pid, self.relay.children()
        peak = (rss_of(pid, "VmHWM"), sum(rss_of(child, "VmHWM") for child in children))
        return Report(
            plan=self.plan,
            load_seconds=load_seconds,
            outcomes=self.outcomes,
            samples=self.samples,
            before=before,
            after=after,
            drain=drain,
            sink=read_sink_status(self.sink_status),
            peak_rss=peak,
            busy=busy,
            generator_cpu=generator,
            metrics=metrics,
        )


def _wait_ready(relay: ServeProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError):
            if http_get(relay.metrics_port, "/readyz")[0] == 200:
                return
        if relay.process.poll() is not None or time.monotonic() > deadline:
            raise RigError(f"mxrelay did not become ready:\n{relay.log[-2000:]}")
        time.sleep(0.1)  # polling readiness


@contextlib.contextmanager
def peers(directory: Path, plan: Plan) -> Iterator[tuple[int, int, Path]]:
    """The DNS server and the sink as child processes: (DNS port, sink port, sink status file)."""
    zone = directory / "zone.txt"
    zone.write_text(zone_text())
    status = directory / "sink.json"
    with contextlib.ExitStack() as stack:
        log = stack.enter_context((directory / "peers.log").open("wb"))
        dns_argv = [sys.executable, "-m", "tests.support.dns_server", "--zone-file", str(zone)]
        dns, dns_port = start_listening(dns_argv, log)
        stack.callback(stop, dns)
        sink_argv = [sys.executable, "-m", "bench.soak", "sink", "--status", str(status)]
        sink, sink_port = start_listening(
            [*sink_argv, "--deferred-share", str(plan.deferred_share)], log
        )
        stack.callback(stop, sink)
        yield dns_port, sink_port, status


def measure(plan: Plan) -> Report:
    """Run the soak; the relay is stopped (SIGTERM) and everything removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="mxrelay-soak-"))
    try:
        with peers(directory, plan) as (dns_port, sink_port, status):
            environ = relay_environment(directory, dns_port, sink_port, plan)
            relay = ServeProcess(environ, directory / "relay.log")
            try:
                _wait_ready(relay)
                report = asyncio.run(Soak(plan, relay, sink_port, status).run())
                exit_status: int | None = None
                with contextlib.suppress(subprocess.TimeoutExpired):  # reported, then killed
                    exit_status = relay.terminate(STOP_TIMEOUT)
                log_bytes = relay.log_path.stat().st_size
            finally:
                relay.close()
        final = read_sink_status(status)  # written once more as the sink stopped
        return dataclasses.replace(report, sink=final, relay_exit=exit_status, log_bytes=log_bytes)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(plan: Plan | None = None) -> None:
    plan = plan or Plan.from_environment(os.environ)
    print(format_report(measure(plan)), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command")
    sink = commands.add_parser("sink", help="serve the soak's sink (used by the soak itself)")
    sink.add_argument("--status", type=Path, required=True)
    sink.add_argument("--deferred-share", type=float, default=Plan().deferred_share)
    args = parser.parse_args(argv)
    if args.command == "sink":
        asyncio.run(serve_sink(args.status, args.deferred_share))
    else:
        run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
