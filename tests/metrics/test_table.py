"""The table of metrics, and what a primed registry exposes: every name, type, help, label set
and bucket.

The dashboards and alert rules depend on these (`tests/deploy/test_metric_names.py` checks their
selectors against a running relay); the snapshot in `tests/data/metrics_primed.prom` pins the
whole exposition, so a change to the table cannot change one by accident. The order of the series
inside a metric is not part of it. To refresh the snapshot after changing a metric on purpose:
`.venv/bin/python -m tests.metrics.test_table --write`.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram, generate_latest

from mxrelay.metrics import TABLE, Metric, Metrics

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


def test_every_metric_is_a_row_of_the_table() -> None:
    metrics = Metrics()
    built = {name for name, value in vars(metrics).items() if name != "registry"}
    assert built == {attribute for attribute, _ in TABLE}
    for attribute, row in TABLE:
        assert isinstance(getattr(Metrics, attribute), Metric)  # on the class: the row
        assert isinstance(getattr(metrics, attribute), row.kind)  # on the instance: the metric
        assert getattr(metrics, attribute)._name == row.name.removesuffix("_total")


@pytest.mark.parametrize(("attribute", "row"), TABLE, ids=[attribute for attribute, _ in TABLE])
def test_each_label_takes_its_values_from_an_enum(attribute: str, row: Metric[Any]) -> None:
    for label, values in row.labels:
        if values is None:
            assert (attribute, label) == ("build_info", "version")  # known only at run time
            continue
        members = tuple(values)
        assert members, label
        assert all(isinstance(member, enum.StrEnum) for member in members), label
        assert len({type(member) for member in members}) == 1, label  # one enum per label


def test_prime_creates_every_combination_of_the_label_values() -> None:
    metrics = Metrics()
    metrics.prime("1.2.3")
    recipients = {
        (s.labels["verdict"], s.labels["reason"])
        for s in next(iter(metrics.smtp_recipients.collect())).samples
        if s.name.endswith("_total")
    }
    assert recipients == {(str(v), str(r)) for v, r in Metrics.smtp_recipients.series()}
    assert len(recipients) == 3 * 12


def test_a_row_that_is_not_primed_shows_its_series_as_they_are_counted() -> None:
    metrics = Metrics()
    metrics.prime("1.2.3")
    assert list(Metrics.smtp_protocol_errors.series()) == []
    sample = ("mxrelay_smtp_protocol_errors_total", {"kind": "syntax"})
    assert metrics.registry.get_sample_value(*sample) is None
    metrics.smtp_protocol_errors.labels(kind="syntax").inc()
    assert metrics.registry.get_sample_value(*sample) == 1.0


def test_the_kinds_of_the_rows() -> None:
    kinds = {row.kind for _, row in TABLE}
    assert kinds == {Counter, Gauge, Histogram}
    assert all((row.buckets is not None) == (row.kind is Histogram) for _, row in TABLE)


if __name__ == "__main__" and "--write" in sys.argv:
    SNAPSHOT.write_text(exposition(), encoding="utf-8")
