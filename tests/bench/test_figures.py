"""Tables, ratios, /proc readers and /metrics values."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from bench import figures
from mxrelay.metrics import Metrics
from tests.support.polling import eventually


def test_table_shows_each_run_and_the_median_with_ratios_below() -> None:
    fast, slow = figures.Row("fast", (3.0, 1.0, 2.0)), figures.Row("slow thing", (1.0, 1.0, 1.0))
    table = figures.format_table(
        "title", "msg/s", [fast, slow], [figures.ratio_line("a / b", fast, slow)]
    )
    assert table.splitlines() == [
        "title (msg/s)",
        "configuration      run 1      run 2      run 3     median",
        "fast                 3.0        1.0        2.0        2.0",
        "slow thing           1.0        1.0        1.0        1.0",
        "ratio a / b: 2.00",
    ]


def test_ratio_line_says_whether_a_target_is_reached() -> None:
    a, b = figures.Row("a", (3.0,)), figures.Row("b", (2.0,))
    assert (
        figures.ratio_line("a / b", a, b, target=1.0) == "ratio a / b: 1.50 (target >= 1.00: met)"
    )
    assert (
        figures.ratio_line("b / a", b, a, target=1.0)
        == "ratio b / a: 0.67 (target >= 1.00: MISSED)"
    )


def test_ratio_of_medians_and_a_zero_denominator() -> None:
    assert figures.ratio(figures.Row("a", (10.0, 30.0)), figures.Row("b", (5.0,))) == 4.0
    assert math.isinf(figures.ratio(figures.Row("a", (1.0,)), figures.Row("b", (0.0,))))


def test_facts_are_aligned() -> None:
    text = figures.format_facts("t", [("a", "1"), ("longer", "2")])
    assert text.splitlines() == ["t", "a       1", "longer  2"]


def test_memory_fields_of_proc_status() -> None:
    status = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert figures.status_bytes(status) == 1024 * 1024
    assert figures.status_bytes(status, "VmHWM") == 2048 * 1024
    with pytest.raises(ValueError, match="VmSwap"):
        figures.status_bytes(status, "VmSwap")
    assert figures.status_bytes(Path("/proc/self/status").read_text()) > 0


STAT = "4242 (a (b) c) S 7 4242 4242 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 100 0 0"


def test_stat_fields_are_counted_after_the_command_name() -> None:
    assert figures.parse_stat(STAT) == figures.ProcessTimes(parent=7, ticks=11 + 22 + 33 + 44)


def test_tree_ticks_sum_a_process_and_its_living_descendants_only() -> None:
    processes = {
        1: figures.ProcessTimes(0, 1000),
        10: figures.ProcessTimes(1, 5),
        11: figures.ProcessTimes(10, 7),
        12: figures.ProcessTimes(11, 3),
        20: figures.ProcessTimes(1, 100),
    }
    assert figures.tree_ticks(processes, 10) == 15
    assert figures.tree_ticks(processes, 12) == 3
    assert figures.tree_ticks(processes, 99) == 0


BURN = "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass\n"
PARENT = f"""\
import subprocess, sys
burn = {BURN!r}
subprocess.run([sys.executable, "-c", burn], check=True)  # exits: counted in our cutime
live = subprocess.Popen(
    [sys.executable, "-c", burn + "print('ready', flush=True); input()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
live.stdout.readline()
print("ready", flush=True)
sys.stdin.readline()
live.stdin.close()
live.wait()
"""


def test_process_tree_cpu_counts_reaped_and_living_children() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdin is not None
        assert parent.stdout is not None
        assert parent.stdout.readline() == "ready\n"
        used = figures.process_tree_cpu(parent.pid)
        parent.stdin.close()
        assert parent.wait(30) == 0
    assert used >= 0.38  # two children of 0.2 s each, clock ticks of 10 ms
    assert figures.process_tree_cpu(2**22 + 1) == 0  # no such process


def test_process_cpu_counts_the_process_alone_and_busy_share_the_machine() -> None:
    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with subprocess.Popen([sys.executable, "-c", f"{spin}\ninput()"], stdin=subprocess.PIPE) as p:
        before = figures.cpu_ticks()
        eventually(lambda: figures.process_cpu(p.pid) >= 0.28)  # the spin is done
        used = figures.process_cpu(p.pid)
        after = figures.cpu_ticks()
        assert p.stdin is not None
        p.stdin.close()
        p.wait(30)
    assert 0.28 <= used < 5.0
    assert figures.process_cpu(2**22 + 1) == 0.0  # no such process
    assert after[0] > before[0]
    assert 0.0 < figures.busy_share(before, after) <= 100.0  # the spin itself kept a CPU busy
    assert figures.busy_share((100, 50), (200, 75)) == 75.0
    assert figures.busy_share((100, 50), (100, 50)) == 0.0


def test_metric_value_reads_a_real_metrics_page() -> None:
    metrics = Metrics()
    metrics.dns_cache_entries.set(42)
    metrics.smtp_recipients.labels(verdict="rejected", reason="nxdomain").inc(3)
    metrics.smtp_recipients.labels(verdict="accepted", reason="ok").inc(2)
    page = generate_latest(metrics.registry).decode()
    assert figures.metric_value(page, "mxrelay_dns_cache_entries") == 42
    assert figures.metric_value(page, "mxrelay_smtp_recipients_total") == 5
    rejected = {"verdict": "rejected"}
    assert figures.metric_value(page, "mxrelay_smtp_recipients_total", rejected) == 3
    with pytest.raises(KeyError):
        figures.metric_value(page, "mxrelay_no_such_metric")


def test_process_cpu_of_one_thread() -> None:
    """A spin on a second thread counts for the process, not for its main thread."""
    spin = (
        "import threading, time\n"
        "def spin():\n"
        "    end = time.thread_time() + 0.3\n"
        "    while time.thread_time() < end: pass\n"
        "worker = threading.Thread(target=spin); worker.start(); worker.join()\n"
        "print('done', flush=True); input()"
    )
    command = [sys.executable, "-c", spin]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        assert p.stdout.readline() == "done\n"
        process, main = figures.process_cpu(p.pid), figures.process_cpu(p.pid, p.pid)
        assert p.stdin is not None
        p.stdin.close()
        p.wait(30)
    assert process >= 0.28
    assert main < 0.2
