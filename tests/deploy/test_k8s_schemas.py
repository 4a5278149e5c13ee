"""Every built-in Kubernetes object the deployment produces validates, strictly (unknown fields are
errors), against the OpenAPI schema of a current Kubernetes release, offline, with the schemas the
kubernetes-validate package ships. Custom resources are test_crd_schemas.py's business."""

from __future__ import annotations

import pytest
from kubernetes_validate import utils as kubernetes_validate

from tests.deploy.manifests import (
    KUBERNETES,
    OPERATIONS_GUIDE,
    OVERLAYS,
    ROOT,
    Manifest,
    containers,
    load_yaml_documents,
    relay,
)

KUBERNETES_VERSION = "1.35"
MINIMUM_KUBERNETES = "1.30"
"""The oldest release the manifests are for: the preStop `sleep` action is enabled from 1.30 on.
docs/operations.md and the README say so (test_the_minimum_kubernetes_version_is_stated)."""
CUSTOM_GROUPS = (
    "monitoring.coreos.com",
    "toolkit.fluxcd.io",
    "postgresql.cnpg.io",
)


def is_custom(obj: Manifest) -> bool:
    group = str(obj["apiVersion"]).partition("/")[0]
    return any(group.endswith(custom) for custom in CUSTOM_GROUPS)


def validation_error(obj: Manifest, version: str = KUBERNETES_VERSION) -> str | None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        return f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}"
    return None


@pytest.mark.parametrize("version", [MINIMUM_KUBERNETES, KUBERNETES_VERSION])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_objects_validate_against_the_kubernetes_schema(
    overlays: dict[str, list[Manifest]], overlay: str, version: str
) -> None:
    builtin = [obj for obj in overlays[overlay] if not is_custom(obj)]
    assert len(builtin) >= 8
    errors = [error for obj in builtin if (error := validation_error(obj, version))]
    assert errors == []


def test_the_minimum_kubernetes_version_is_stated(overlays: dict[str, list[Manifest]]) -> None:
    uses_sleep = any(
        "sleep" in item.get("lifecycle", {}).get("preStop", {})
        for objects in overlays.values()
        for item in containers(relay(objects)[0])
    )
    assert uses_sleep
    assert tuple(map(int, MINIMUM_KUBERNETES.split("."))) >= (1, 30)
    for document in (OPERATIONS_GUIDE, ROOT / "README.md"):
        assert f"Kubernetes {MINIMUM_KUBERNETES} or newer" in document.read_text(encoding="utf-8")


def test_the_ingress_examples_validate(ingress_example: list[Manifest]) -> None:
    examples = [
        doc
        for path in sorted((KUBERNETES / "examples").rglob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_yaml_documents(path)
    ]
    assert {obj["kind"] for obj in [*ingress_example, *examples]} == {"Ingress", "Secret"}
    errors = [error for obj in [*ingress_example, *examples] if (error := validation_error(obj))]
    assert errors == []


def test_the_validator_rejects_what_the_api_server_would() -> None:
    """The check above can fail: a misspelt field and a wrong type are both caught."""
    misspelt: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 25, "targetPort": "smtp"}], "selectr": {"a": "b"}},
    }
    wrong_type: Manifest = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "x"},
        "spec": {"minAvailable": [1]},
    }
    assert validation_error(misspelt) is not None
    assert validation_error(wrong_type) is not None
