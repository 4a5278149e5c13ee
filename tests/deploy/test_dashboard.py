"""The Grafana dashboard: a well-formed dashboard the Grafana sidecar picks up (its metric names
are checked against a running relay in test_metric_names.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.manifests import MONITORING, OVERLAYS, Manifest, one

DASHBOARD = MONITORING / "mxrelay-dashboard.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sidecar_finds_it_in_a_config_map(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    config_map = one(overlays[overlay], "ConfigMap", "email-relay-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"][DASHBOARD.name]) == json.loads(DASHBOARD.read_text())


def test_panels_are_unique_and_laid_out_without_overlap(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells


def test_every_query_uses_the_selected_data_source_and_namespace(dashboard: dict[str, Any]) -> None:
    variables = {item["name"] for item in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    queries = 0
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"], target["expr"]
            queries += 1
    assert queries >= 20
    assert dashboard["uid"] == "mxrelay"
