"""Every metric an alert or the dashboard uses is one mxrelay really exports.

A real `mxrelay serve` (passthrough, loopback ports, a name server address where nothing
answers) is scraped once; every series selector in the PrometheusRule and in the dashboard must
name a metric it exposes (histograms as _bucket/_sum/_count, counters as _total). Where the scrape
shows series (mxrelay creates most labelled series at start-up), label matchers must use labels
and values that exist and `by (...)` labels must exist too. Only the few series Prometheus and the
kubelet produce themselves are allowed besides.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import MONITORING, Manifest, one
from tests.support.processes import ServeProcess, free_port, wait_for_port

NOT_FROM_MXRELAY = {
    "up": "Prometheus records it for every scrape target",
    "kubelet_volume_stats_available_bytes": "the kubelet's volume statistics",
    "kubelet_volume_stats_capacity_bytes": "the kubelet's volume statistics",
}
TARGET_LABELS = {"namespace", "pod", "job", "instance", "endpoint", "service", "container"}
TARGET_LABELS |= {"persistentvolumeclaim"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": "email-relay"}

Samples = dict[str, list[dict[str, str]]]
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Sample name → label sets, from a running relay's /metrics."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    relay = ServeProcess(
        {
            "MXRELAY_DELIVERY": "passthrough",
            "MXRELAY_UPSTREAM": f"smtp://127.0.0.1:{free_port()}",
            "MXRELAY_DNS_SERVERS": f"127.0.0.1:{free_port()}",
        },
        log,
    )
    try:
        wait_for_port(relay.metrics_port, process=relay.process)
        url = f"http://127.0.0.1:{relay.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        relay.terminate()
        relay.close()
    return parse_exposition(text)


def parse_exposition(text: str) -> Samples:
    """Sample name → the label sets seen; a metric without series yet maps to an empty list."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            samples.setdefault(family.name + suffix, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


def rule_expressions(overlays: dict[str, list[Manifest]]) -> list[str]:
    rule = one(overlays["standalone"], "PrometheusRule", "email-relay")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_expressions(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    expressions = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unknown dashboard variable in {expr}"
            expressions.append(expr)
    return expressions


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def grouping_problems(expr: str, samples: Samples) -> list[str]:
    """`by (...)` labels that neither the target nor any metric below the aggregation carries."""
    problems: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.AggregateExpr) or node.modifier is None:
            return
        below = {s.name for s in selectors(str(node.expr)) if s.name}
        if any(not samples.get(name) for name in below):
            return  # a metric without series yet: its labels cannot be seen
        available = set(TARGET_LABELS) | {"le"}
        for name in below:
            for labels in samples[name]:
                available |= set(labels)
        problems.extend(
            f"{expr}: by ({label})" for label in node.modifier.labels if label not in available
        )

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return problems


def selector_problems(selector: promql_parser.VectorSelector, samples: Samples) -> list[str]:
    name = selector.name
    if name is None:
        return [f"{selector}: a selector without a metric name"]
    if name in NOT_FROM_MXRELAY:
        return []
    if name not in samples:
        return [f"{name} is not exported by mxrelay"]
    problems = []
    for matcher in selector.matchers.matchers:
        if matcher.name in TARGET_LABELS or not samples[name]:
            continue
        values = {labels.get(matcher.name) for labels in samples[name]}
        if values == {None}:
            problems.append(f"{name} has no label {matcher.name}")
        elif matcher.op == promql_parser.MatchOp.Equal and matcher.value not in values:
            problems.append(f"{name}{{{matcher.name}}} never takes the value {matcher.value!r}")
        elif matcher.op == promql_parser.MatchOp.Re:
            for alternative in matcher.value.split("|"):
                if not any(v and re.fullmatch(alternative, v) for v in values):
                    problems.append(f"{name}{{{matcher.name}}} never matches {alternative!r}")
    return problems


def check(expressions: list[str], samples: Samples) -> list[str]:
    problems = []
    for expr in expressions:
        for selector in selectors(expr):
            problems.extend(selector_problems(selector, samples))
        problems.extend(grouping_problems(expr, samples))
    return problems


def test_the_relay_exports_its_metrics(exported: Samples) -> None:
    assert "mxrelay_build_info" in exported
    assert "mxrelay_smtp_connections_total" in exported
    assert any(name.endswith("_bucket") for name in exported)


def test_alert_rules_use_only_exported_metrics(
    exported: Samples, overlays: dict[str, list[Manifest]]
) -> None:
    expressions = rule_expressions(overlays)
    assert len(expressions) >= 9
    assert check(expressions, exported) == []


def test_the_dashboard_uses_only_exported_metrics(exported: Samples) -> None:
    expressions = dashboard_expressions(MONITORING / "mxrelay-dashboard.json")
    assert len(expressions) >= 20
    assert check(expressions, exported) == []


def test_the_check_catches_wrong_names_labels_and_values(exported: Samples) -> None:
    """Control: each kind of mistake is reported."""
    wrong: dict[str, Any] = {
        "mxrelay_smtp_connection_total": "not exported",
        'mxrelay_smtp_connections_total{reslt="denied"}': "no label",
        'mxrelay_smtp_connections_total{result="refused"}': "never takes",
        'mxrelay_smtp_connections_total{result=~"denied|nope"}': "never matches",
        "sum by (verdict) (rate(mxrelay_smtp_connections_total[5m]))": "by (verdict)",
        "rate(node_cpu_seconds_total[5m])": "not exported",
    }
    for expr, reason in wrong.items():
        problems = check([expr], exported)
        assert len(problems) == 1, expr
        assert reason in problems[0], problems
