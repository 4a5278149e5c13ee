"""The PrometheusRule: its plain extract (rules.yaml) is current, promtool accepts it and runs its
unit tests from the monitoring folder as shipped, every alert has a case where it fires (labels
and annotations) and one where it stays quiet, and every alert links to its runbook in the
operations guide through one operator setting.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    KUBERNETES,
    MONITORING,
    OPERATIONS_GUIDE,
    OVERLAYS,
    ROOT,
    Manifest,
    load_yaml_documents,
    one,
    render,
)
from tests.deploy.rules import RULES_FILE, plain_rules

RUNBOOK_GUIDE = "docs/operations.md"
"""Where the runbook links point as shipped: relative to the repository."""
REQUIRED_ALERTS = {
    "MxrelayDown",
    "MxrelaySmtpRefusingConnections",
    "MxrelayQueueBacklog",
    "MxrelayDeliveriesFailing",
    "MxrelayGraphConfigurationFault",
    "MxrelayGraphThrottled",
    "MxrelayDnsTemporaryFailures",
    "MxrelayRefusedRecipientsSurge",
    "MxrelayStoreNearlyFull",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise RuntimeError("promtool is not installed (Debian package `prometheus`; `make test`)")
    return found


@pytest.fixture(scope="module")
def groups(overlays: dict[str, list[Manifest]]) -> list[dict[str, Any]]:
    rules = [one(overlays[name], "PrometheusRule", "email-relay") for name in OVERLAYS]
    assert all(rule["spec"] == rules[0]["spec"] for rule in rules)
    found: list[dict[str, Any]] = rules[0]["spec"]["groups"]
    return found


@pytest.fixture(scope="module")
def alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_issue_alerts_are_all_there(alerts: dict[str, dict[str, Any]]) -> None:
    assert set(alerts) >= REQUIRED_ALERTS


def test_the_plain_rules_file_is_the_current_extract_of_the_prometheus_rule(
    groups: list[dict[str, Any]],
) -> None:
    shipped = RULES_FILE.read_text(encoding="utf-8")
    assert shipped == plain_rules(), "rules.yaml is stale: run `make rules`"
    assert yaml.safe_load(shipped)["groups"] == groups


def test_promtool_accepts_the_shipped_rules_file(groups: list[dict[str, Any]]) -> None:
    result = run_promtool("check", "rules", RULES_FILE.name, cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in result.stdout


def test_promtool_unit_tests_pass_as_shipped() -> None:
    """What an operator runs: `promtool test rules alerts.test.yaml` in the monitoring folder."""
    result = run_promtool("test", "rules", "alerts.test.yaml", cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("change", "alert"),
    [
        (("> 900", "> 9000"), "MxrelayQueueBacklog"),
        (("#mxrelaydown", "#elsewhere"), "MxrelayDown"),
        (("cannot write to its store", "cannot write"), "MxrelayStoreWritesFailing"),
    ],
    ids=["threshold", "runbook link", "summary"],
)
def test_promtool_unit_tests_can_fail(tmp_path: Path, change: tuple[str, str], alert: str) -> None:
    """Control: a raised threshold, or a changed annotation, is caught by the unit tests."""
    shutil.copytree(MONITORING, tmp_path, dirs_exist_ok=True)
    rules = tmp_path / RULES_FILE.name
    text = rules.read_text(encoding="utf-8")
    assert change[0] in text
    rules.write_text(text.replace(change[0], change[1]), encoding="utf-8")
    result = run_promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case(alerts: dict[str, dict[str, Any]]) -> None:
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
            for expected in check.get("exp_alerts") or []:
                annotations = set(expected.get("exp_annotations", {}))
                assert annotations == {"summary", "description", "runbook_url"}, case["name"]
    assert firing >= set(alerts), f"never shown firing: {sorted(set(alerts) - firing)}"
    assert quiet >= set(alerts), f"never shown quiet: {sorted(set(alerts) - quiet)}"
    assert (firing | quiet) <= set(alerts), "tests name an alert that does not exist"


def test_every_alert_is_described_and_has_a_severity(alerts: dict[str, dict[str, Any]]) -> None:
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        assert rule.get("for"), f"{name} fires on a single evaluation"


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_runbook_links_lead_to_a_section_of_the_operations_guide(
    alerts: dict[str, dict[str, Any]],
) -> None:
    guide = ROOT / RUNBOOK_GUIDE
    assert guide == OPERATIONS_GUIDE
    anchors = github_anchors(guide.read_text(encoding="utf-8"))
    for name, rule in alerts.items():
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_GUIDE}#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no section {name}"


def test_the_runbook_base_is_one_setting_for_the_operator(tmp_path: Path) -> None:
    """Setting the PrometheusRule's mxrelay-runbooks annotation, as the guide says, moves every
    alert's link to the operator's copy of the guide, anchors kept."""
    copy = tmp_path / "base"
    shutil.copytree(KUBERNETES / "base", copy)
    rule_file = copy / "monitoring" / "prometheusrule.yaml"
    text = rule_file.read_text(encoding="utf-8")
    own = "https://git.example.com/acme/email-relay/blob/main/docs/operations.md"
    assert f"mxrelay-runbooks: {RUNBOOK_GUIDE}\n" in text
    rule_file.write_text(
        text.replace(f"mxrelay-runbooks: {RUNBOOK_GUIDE}", f"mxrelay-runbooks: {own}")
    )
    rule = one(render(copy), "PrometheusRule", "email-relay")
    links = [
        r["annotations"]["runbook_url"]
        for group in rule["spec"]["groups"]
        for r in group["rules"]
        if "alert" in r
    ]
    assert links
    assert all(link.startswith(own + "#") for link in links), links


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_monitoring_objects_carry_one_configurable_selector_label(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    """The label Prometheus selects them by comes from one patch in base/kustomization.yaml,
    not from the objects' own files."""
    monitoring = [o for o in overlays[overlay] if o["apiVersion"].startswith("monitoring.coreos")]
    assert {o["kind"] for o in monitoring} == {"ServiceMonitor", "PrometheusRule"}
    assert {o["metadata"]["labels"].get("release") for o in monitoring} == {"kube-prometheus-stack"}
    for path in MONITORING.glob("*.yaml"):
        for document in load_yaml_documents(path):
            assert "release" not in document.get("metadata", {}).get("labels", {}), path.name
