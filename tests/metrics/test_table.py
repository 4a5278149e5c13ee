"""What a primed registry exposes: every metric's name, type, help, label sets and buckets.

The dashboards and alert rules depend on these (`tests/deploy/test_metric_names.py` checks their
selectors against a running relay); the snapshot in `tests/data/metrics_primed.prom` pins the
whole exposition, so a refactor of `metrics.py` cannot change one by accident. The order of the
series inside a metric is not part of it. To refresh the snapshot after changing a metric on
purpose: `.venv/bin/python -m tests.metrics.test_table --write`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client import generate_latest

from mxrelay.metrics import Metrics

SNAPSHOT = Path(__file__).resolve().parent.parent / "data" / "metrics_primed.prom"


def exposition() -> str:
    """A fresh registry, primed, as text: `_created` samples (timestamps) left out, the series of
    each metric sorted."""
    metrics = Metrics()
    metrics.prime("1.2.3")
    blocks: list[tuple[list[str], list[str]]] = []  # (comments, series) per metric
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("# HELP "):
            blocks.append(([line], []))
        elif line.startswith("#"):
            blocks[-1][0].append(line)
        elif not line.split("{")[0].split(" ")[0].endswith("_created"):
            blocks[-1][1].append(line)
    return "".join("\n".join([*comments, *sorted(series)]) + "\n" for comments, series in blocks)


def test_the_primed_exposition_is_the_snapshot() -> None:
    assert exposition() == SNAPSHOT.read_text(encoding="utf-8"), (
        "the metrics changed: if on purpose, run `.venv/bin/python -m tests.metrics.test_table --write`"
    )


def test_two_registries_share_nothing() -> None:
    one, two = Metrics(), Metrics()
    one.smtp_connections.labels(result="accepted").inc()
    sample = ("mxrelay_smtp_connections_total", {"result": "accepted"})
    assert one.registry.get_sample_value(*sample) == 1.0
    assert two.registry.get_sample_value(*sample) is None


if __name__ == "__main__" and "--write" in sys.argv:
    SNAPSHOT.write_text(exposition(), encoding="utf-8")
