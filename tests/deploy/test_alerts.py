"""The PrometheusRule: promtool accepts it, its unit tests pass, every alert has a case where it
fires and one where it stays quiet, and every alert links to its runbook in the operations guide.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import MONITORING, OPERATIONS_GUIDE, OVERLAYS, Manifest, one

RUNBOOK_BASE = "https://github.com/your-org/mxrelay/blob/main/docs/operations.md#"
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


def test_promtool_accepts_the_rules(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in result.stdout


def run_rule_tests(
    groups: list[dict[str, Any]], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """promtool's unit tests (alerts.test.yaml) against `groups`, their annotations left out."""
    stripped = [
        {
            **group,
            "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]],
        }
        for group in groups
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": stripped}), encoding="utf-8")
    shutil.copy(MONITORING / "alerts.test.yaml", tmp_path / "alerts.test.yaml")
    return run_promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)


def test_promtool_unit_tests_pass(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    result = run_rule_tests(groups, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    """Control: with one threshold raised tenfold, the unit tests catch the change."""
    changed = copy.deepcopy(groups)
    for group in changed:
        for rule in group["rules"]:
            if rule.get("alert") == "MxrelayQueueBacklog":
                rule["expr"] = rule["expr"].replace("> 900", "> 9000")
    result = run_rule_tests(changed, tmp_path)
    assert result.returncode != 0
    assert "MxrelayQueueBacklog" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case(alerts: dict[str, dict[str, Any]]) -> None:
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
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
    anchors = github_anchors(OPERATIONS_GUIDE.read_text(encoding="utf-8"))
    for name, rule in alerts.items():
        url = rule["annotations"]["runbook_url"]
        assert url == RUNBOOK_BASE + name.lower(), name
        assert name.lower() in anchors, f"docs/operations.md has no section {name}"
