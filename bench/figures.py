"""What the benchmarks read and print: per-run figures and their medians as tables, ratios, memory
and CPU time of processes from /proc, and values from a Prometheus /metrics page.

Pure functions over text and values, plus two thin readers of /proc; no process is started here.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# --- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One configuration's per-run figures."""

    label: str
    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def ratio(numerator: Row, denominator: Row) -> float:
    """Median over median; infinite when the denominator is 0."""
    return numerator.median / denominator.median if denominator.median else float("inf")


def format_table(title: str, unit: str, rows: Sequence[Row], ratios: Sequence[str] = ()) -> str:
    """A fixed-width table: label, each run, median; then free lines such as ratios."""
    runs = max((len(row.runs) for row in rows), default=0)
    width = max([len("configuration"), *(len(row.label) for row in rows)])
    header = ["configuration".ljust(width)]
    header += [f"run {i + 1}".rjust(9) for i in range(runs)] + ["median".rjust(9)]
    lines = [f"{title} ({unit})", "  ".join(header)]
    for row in rows:
        cells = [row.label.ljust(width)] + [f"{value:9.1f}" for value in row.runs]
        cells += [" " * 9] * (runs - len(row.runs)) + [f"{row.median:9.1f}"]
        lines.append("  ".join(cells))
    lines.extend(ratios)
    return "\n".join(lines)


def ratio_line(label: str, numerator: Row, denominator: Row, target: float | None = None) -> str:
    """`ratio LABEL: 1.23`, and whether it reaches `target` when one is given."""
    value = ratio(numerator, denominator)
    verdict = (
        ""
        if target is None
        else f" (target >= {target:.2f}: {'met' if value >= target else 'MISSED'})"
    )
    return f"ratio {label}: {value:.2f}{verdict}"


def format_facts(title: str, facts: Sequence[tuple[str, str]]) -> str:
    """A title, then one `label  value` line per fact, values aligned."""
    width = max((len(label) for label, _ in facts), default=0)
    return "\n".join([title, *(f"{label.ljust(width)}  {value}" for label, value in facts)])


# --- /proc ---------------------------------------------------------------------------------


def status_bytes(status: str, field: str = "VmRSS") -> int:
    """A memory field (VmRSS, VmHWM...) of the text of /proc/PID/status, in bytes."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == field:
            number, unit = value.split()
            if unit != "kB":
                raise ValueError(f"unexpected {field} unit {unit!r}")
            return int(number) * 1024
    raise ValueError(f"no {field} line")


@dataclass(frozen=True, slots=True)
class ProcessTimes:
    """/proc/PID/stat: the parent PID, and CPU ticks of the process and of its reaped children."""

    parent: int
    ticks: int


def parse_stat(text: str) -> ProcessTimes:
    """/proc/PID/stat; fields counted after the command name, which may contain spaces and ')'."""
    fields = text.rpartition(")")[2].split()
    # fields[0] is field 3 (state): ppid is 4, utime 14, stime 15, cutime 16, cstime 17
    return ProcessTimes(int(fields[1]), sum(int(value) for value in fields[11:15]))


def tree_ticks(processes: Mapping[int, ProcessTimes], root: int) -> int:
    """Ticks of `root` and every living descendant; exited ones are in their parent's cutime."""
    children: dict[int, list[int]] = {}
    for pid, times in processes.items():
        children.setdefault(times.parent, []).append(pid)
    total, pending = 0, [root] if root in processes else []
    while pending:
        pid = pending.pop()
        total += processes[pid].ticks
        pending.extend(children.get(pid, ()))
    return total


def process_tree_cpu(root: int) -> float:
    """CPU seconds used so far by process `root` and all its descendants."""
    processes: dict[int, ProcessTimes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                processes[int(entry.name)] = parse_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):  # exited while being read
                continue
    return tree_ticks(processes, root) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int, thread: int | None = None) -> float:
    """CPU seconds used so far by process `pid` alone (its threads, not its children), or by
    one of its threads (`thread`: a thread id; the process's own id is its main thread)."""
    stat = Path("/proc") / str(pid) / ("stat" if thread is None else f"task/{thread}/stat")
    try:
        fields = stat.read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> tuple[int, int]:
    """(all, idle) ticks of every CPU so far, from /proc/stat: how busy the machine was between
    two readings, whoever used it."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]  # idle + iowait


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Per cent of the machine's CPU time in use between two `cpu_ticks()` readings."""
    total, idle = after[0] - before[0], after[1] - before[1]
    return 100.0 * (1 - idle / total) if total > 0 else 0.0


# --- /metrics ---------------------------------------------------------------------------------


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples called `name` (whose labels include `labels`) in a /metrics page."""
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels or {}).items() <= sample.labels.items():
                total, found = total + sample.value, True
    if not found:
        raise KeyError(name)
    return total
