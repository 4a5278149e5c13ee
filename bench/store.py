"""Store-and-forward (issue 4, section 7): mxrelay in `smtp` mode against a Postfix relay.

On the front-door rig (`bench/rig.py`: private network namespace, the test DNS server, smtp-sink,
a private Postfix), `smtp-source -s S -m 5000 -l 2048` sends to mxrelay with
`MXRELAY_DELIVERY=smtp` and its queue draining to the same smtp-sink, once with SQLite and once
with PostgreSQL (a throw-away cluster started in the namespace from Debian's binaries, default
durability: fsync on, synchronous_commit on), and to Postfix in the same run, alternating runs.

Two rates per run: **acceptance** = messages / time until smtp-source has every 250 (each 250 is
sent only after the commit, fsync included: `MXRELAY_STORE_SYNCHRONOUS=full`); **end to end** =
messages / time until the sink has them all (mxrelay: its delivered-attempts counter reaches the
count; Postfix: its queue is empty). The ratios mxrelay / Postfix are printed per configuration.
"""

from __future__ import annotations

import os
import pwd
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.figures import (
    Row,
    busy_share,
    cpu_ticks,
    format_facts,
    format_table,
    metric_value,
    process_cpu,
    process_tree_cpu,
    ratio_line,
)
from bench.rig import (
    LOOPBACK,
    METRICS_PORT,
    POSTFIX_PORT,
    RELAY_PORT,
    SINK_PORT,
    Rig,
    RigError,
    Service,
    SourceLoad,
    Unavailable,
)

POSTGRES_PORT = 5432
POSTGRES_START_TIMEOUT = 60.0
POSTGRES_ROOT = Path("/usr/lib/postgresql")
DRAIN_TIMEOUT = 600.0
DELIVERED = "mxrelay_deliveries_total"
ACCEPTANCE = "acceptance (250s per second)"
END_TO_END = "end to end"
CPU_TITLE = (
    "CPU time per message from acceptance to delivery (process trees: mxrelay, plus the "
    "PostgreSQL server for the postgresql rows; Postfix's master and its daemons)"
)
ACCEPTING_TITLE = (
    "while accepting: CPU time per message of mxrelay's accepting process alone (its delivery "
    "process and the database excluded) and of its event loop (the main thread: the store's "
    "threads excluded), and the machine's CPU busy (every process)"
)
TARGETS = {
    (ACCEPTANCE, "sqlite", 20): 2.0,
    (END_TO_END, "sqlite", 20): 1.5,
    (ACCEPTANCE, "sqlite", 1): 1.0,
    (ACCEPTANCE, "postgresql", 20): 1.5,
    (ACCEPTANCE, "postgresql", 1): 0.8,
}
"""The targets against Postfix, with fsync-on-commit durability on both sides: at 20 sessions
throughput, at one session latency (each client waits for its own commit)."""


@dataclass(frozen=True)
class Plan:
    messages: int = 5000
    runs: int = 3
    sessions: tuple[int, ...] = (20, 1)
    warm_up: int = 200
    backends: tuple[str, ...] = ("sqlite", "postgresql")


def run(plan: Plan = Plan()) -> None:
    with Rig() as rig:
        rig.start_dns()
        rig.start_sink()
        postfix = rig.start_postfix()
        urls = {"sqlite": f"sqlite:///{rig.base / 'relay.db'}"}
        extra_cpu: dict[str, list[int]] = {"sqlite": []}
        if "postgresql" in plan.backends:
            url, server = start_postgres(rig)
            urls["postgresql"] = url
            extra_cpu["postgresql"] = [server.pid]  # the database's work counts as mxrelay's
        figures = Figures()
        log_bytes: int | None = None
        for backend in plan.backends:
            relay = rig.start_relay(
                {
                    "MXRELAY_DELIVERY": "smtp",
                    "MXRELAY_UPSTREAM": f"smtp://{LOOPBACK}:{SINK_PORT}",
                    "MXRELAY_DATABASE_URL": urls[backend],
                }
            )
            label = f"mxrelay smtp/{backend}"
            roots = Roots([relay.pid, *extra_cpu[backend]], [postfix.pid])
            measure_block(rig, plan, label, roots, figures)
            if backend == "sqlite":  # before the relay stops: closing, SQLite removes the log
                log_bytes = _file_size(rig.base / "relay.db-wal")
            rig.stop(relay)
        rig.stop(postfix)
        print(tables(plan, figures.acceptance, figures.end_to_end), flush=True)
        print(format_table(CPU_TITLE, "ms", figures.cpu_rows()), flush=True)
        print(format_table(ACCEPTING_TITLE, "ms or %", figures.accepting_rows()), flush=True)
        if log_bytes is not None:
            print(log_facts(plan, log_bytes), flush=True)


def log_facts(plan: Plan, log_bytes: int) -> str:
    """The size of SQLite's write-ahead log after every run: what a few dozen commits write,
    whatever the number of messages, as long as checkpoints let the log start over."""
    written = plan.warm_up + plan.messages * plan.runs * len(plan.sessions)
    return format_facts(
        "SQLite's write-ahead log after the runs",
        [("relay.db-wal", f"{log_bytes / 1e6:.1f} MB"), ("messages accepted", f"{written}")],
    )


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass
class Figures:
    acceptance: dict[str, list[float]] = field(default_factory=dict)
    end_to_end: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    accepting: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: str, run: Run) -> None:
        self.acceptance.setdefault(label, []).append(run.acceptance)
        self.end_to_end.setdefault(label, []).append(run.end_to_end)
        self.cpu.setdefault(label, []).append(run.cpu_ms)
        if run.accepting_cpu_ms is not None:
            self.accepting.setdefault(f"{label}: ms", []).append(run.accepting_cpu_ms)
        if run.loop_cpu_ms is not None:
            self.accepting.setdefault(f"{label}: loop ms", []).append(run.loop_cpu_ms)
        self.accepting.setdefault(f"{label}: busy %", []).append(run.busy)

    def cpu_rows(self) -> list[Row]:
        return [Row(label, tuple(values)) for label, values in self.cpu.items()]

    def accepting_rows(self) -> list[Row]:
        return [Row(label, tuple(values)) for label, values in self.accepting.items()]


@dataclass(frozen=True)
class Run:
    """One run's figures: rates, CPU time per message (whole process trees), and while the
    client sent: the accepting process's CPU per message (mxrelay only) and the machine's load."""

    acceptance: float
    end_to_end: float
    cpu_ms: float
    busy: float
    accepting_cpu_ms: float | None = None
    loop_cpu_ms: float | None = None


@dataclass(frozen=True)
class Roots:
    """The processes whose CPU time counts for each side (with all their descendants)."""

    relay: list[int]
    postfix: list[int]


def cpu_seconds(pids: list[int]) -> float:
    return sum(process_tree_cpu(pid) for pid in pids)


def measure_block(rig: Rig, plan: Plan, label: str, roots: Roots, figures: Figures) -> None:
    """Warm both up, then alternate mxrelay and Postfix runs for each session count."""
    for port in (RELAY_PORT, POSTFIX_PORT):
        rig.run(SourceLoad(plan.warm_up, max(plan.sessions)).argv(LOOPBACK, port))
    wait_relay_delivered(rig, plan.warm_up)
    rig.wait_postfix_idle()
    for sessions in plan.sessions:
        load = SourceLoad(plan.messages, sessions)
        for _ in range(plan.runs):
            figures.add(f"{label}, {sessions} sess.", relay_run(rig, load, roots.relay))
            figures.add(f"postfix relay, {sessions} sess.", postfix_run(rig, load, roots.postfix))


def delivered(rig: Rig) -> float:
    _, text = rig.http_get(METRICS_PORT, "/metrics")
    return metric_value(text, DELIVERED, {"transport": "smtp", "outcome": "delivered"})


def wait_relay_delivered(rig: Rig, count: float, timeout: float = DRAIN_TIMEOUT) -> float:
    """Until the relay's delivered counter reaches `count`; returns when it did (rig clock)."""
    deadline = rig.clock() + timeout
    while delivered(rig) < count:
        if rig.clock() > deadline:
            raise RigError(f"mxrelay did not deliver {count:.0f} messages in {timeout:.0f}s")
        time.sleep(0.02)  # polling the counter; the resolution of the end-to-end time
    return rig.clock()


def relay_run(rig: Rig, load: SourceLoad, pids: list[int]) -> Run:
    """One run against mxrelay; `pids[0]` is the accepting process."""
    before = delivered(rig)
    main = pids[0]
    cpu, accepting, loop = cpu_seconds(pids), process_cpu(main), process_cpu(main, main)
    ticks = cpu_ticks()
    started = rig.clock()
    elapsed, _ = rig.run(load.argv(LOOPBACK, RELAY_PORT))
    accepting_ms = (process_cpu(main) - accepting) * 1000 / load.messages
    loop_ms = (process_cpu(main, main) - loop) * 1000 / load.messages
    busy = busy_share(ticks, cpu_ticks())
    finished = wait_relay_delivered(rig, before + load.messages)
    used = (cpu_seconds(pids) - cpu) * 1000 / load.messages
    rates = load.messages / elapsed, load.messages / (finished - started)
    return Run(*rates, used, busy, accepting_ms, loop_ms)


def postfix_run(rig: Rig, load: SourceLoad, pids: list[int]) -> Run:
    cpu, ticks = cpu_seconds(pids), cpu_ticks()
    started = rig.clock()
    elapsed, _ = rig.run(load.argv(LOOPBACK, POSTFIX_PORT))
    busy = busy_share(ticks, cpu_ticks())
    rig.wait_postfix_idle()
    used = (cpu_seconds(pids) - cpu) * 1000 / load.messages
    return Run(load.messages / elapsed, load.messages / (rig.clock() - started), used, busy)


def tables(
    plan: Plan, acceptance: dict[str, list[float]], end_to_end: dict[str, list[float]]
) -> str:
    size = SourceLoad(1, 1).size
    out = []
    for title, figures in ((ACCEPTANCE, acceptance), (END_TO_END, end_to_end)):
        rows = [Row(label, tuple(values)) for label, values in figures.items()]
        by_label = {row.label: row for row in rows}
        ratios = []
        for sessions in plan.sessions:
            postfix = by_label[f"postfix relay, {sessions} sess."]
            for backend in plan.backends:
                mine = by_label[f"mxrelay smtp/{backend}, {sessions} sess."]
                target = TARGETS.get((title, backend, sessions))
                label = f"{backend} / postfix, {sessions} sess."
                ratios.append(ratio_line(label, mine, postfix, target))
        heading = (
            f"store-and-forward, {title}: {plan.messages} messages of {size} bytes from "
            f"smtp-source, median of {plan.runs} (Postfix: of every run in the same process)"
        )
        out.append(format_table(heading, "messages/s", rows, ratios))
    return "\n\n".join(out)


# --- PostgreSQL in the namespace -------------------------------------------------------------


def _bin_dir() -> Path:
    versions = sorted(
        (p for p in POSTGRES_ROOT.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise Unavailable("PostgreSQL server binaries (Debian package postgresql) are missing")
    return versions[-1]


def start_postgres(rig: Rig) -> tuple[str, Service]:
    """A cluster with default durability on the namespace's loopback: its URL and its process."""
    bin_dir = _bin_dir()
    if shutil.which("runuser") is None:
        raise Unavailable("runuser is missing")
    base = rig.base / "postgres"
    base.mkdir()
    account = pwd.getpwnam("postgres")
    os.chown(base, account.pw_uid, account.pw_gid)
    runas = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    rig.run([*runas, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])
    server: Service = rig.start(
        "postgres",
        [
            *runas,
            str(bin_dir / "postgres"),
            "-D", str(data),
            "-c", f"listen_addresses={LOOPBACK}",
            "-c", f"port={POSTGRES_PORT}",
            "-c", f"unix_socket_directories={base}",
        ],
    )  # fmt: skip
    rig.wait_for_port(server, POSTGRES_PORT)
    psql = [str(bin_dir / "psql"), "-h", LOOPBACK, "-p", str(POSTGRES_PORT), "-U", "postgres"]
    deadline = rig.clock() + POSTGRES_START_TIMEOUT
    while True:  # listening comes before taking connections ("the database system is starting up")
        try:
            rig.run([*psql, "-qc", "SELECT 1"])
            break
        except RigError:
            if rig.clock() > deadline:
                raise
            time.sleep(0.2)  # polling a server that is still starting
    rig.run([*psql, "-qc", "CREATE DATABASE mxrelay"])
    return f"postgresql://postgres@{LOOPBACK}:{POSTGRES_PORT}/mxrelay", server
