"""The Flux objects and the Prometheus Operator objects validate against their CRD schemas."""

from __future__ import annotations

import copy

import pytest

from tests.deploy import crd_validator as crd
from tests.deploy.manifests import OVERLAYS, Manifest

CRD_GROUPS = ("toolkit.fluxcd.io", "monitoring.coreos.com")


def crd_objects(objects: list[Manifest]) -> list[Manifest]:
    return [obj for obj in objects if str(obj["apiVersion"]).partition("/")[0].endswith(CRD_GROUPS)]


@pytest.fixture(scope="module")
def node() -> str:
    return crd.ensure_installed()


def test_flux_objects_validate(node: str, flux_objects: list[Manifest]) -> None:
    objects = crd_objects(flux_objects)
    assert {obj["kind"] for obj in objects} == {
        "GitRepository",
        "Kustomization",
        "ImageRepository",
        "ImagePolicy",
        "ImageUpdateAutomation",
    }
    assert [r for r in crd.validate(node, objects) if r["error"]] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_objects_validate(
    node: str, overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = crd_objects(overlays[overlay])
    assert {obj["kind"] for obj in objects} == {"ServiceMonitor", "PrometheusRule"}
    assert [r for r in crd.validate(node, objects) if r["error"]] == []


def test_the_validator_catches_broken_objects(node: str, flux_objects: list[Manifest]) -> None:
    """Controls for the checks above: each broken copy must be refused, with a reason."""
    kustomization = next(o for o in flux_objects if o["kind"] == "Kustomization")
    no_source = copy.deepcopy(kustomization)
    del no_source["spec"]["sourceRef"]
    wrong_type = copy.deepcopy(kustomization)
    wrong_type["spec"]["prune"] = "yes"
    bad_interval: Manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "interval": "30 seconds"}]},
    }
    unknown: Manifest = {"apiVersion": "example.toolkit.fluxcd.io/v9", "kind": "Nothing"}
    results = crd.validate(node, [no_source, wrong_type, bad_interval, unknown])
    assert all(result["error"] for result in results), results
    assert "sourceRef" in results[0]["error"]
    assert "boolean" in results[1]["error"]
