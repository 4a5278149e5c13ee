"""The Flux objects point at each other and at real paths, and image automation can find the
setter markers it writes through."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.deploy.manifests import FLUX, KUBERNETES, OVERLAYS, ROOT, Manifest, one

MARKER = re.compile(r'#\s*\{"\$imagepolicy":\s*"([\w-]+):([\w-]+):(name|tag)"\}')


def project_version() -> Version:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return Version(pyproject["project"]["version"])


def semver_range(constraint: str) -> SpecifierSet:
    """Flux's space-separated semver constraint (">=0.1.0 <1.0.0") as a PEP 440 specifier set."""
    return SpecifierSet(",".join(constraint.split()))


def repo_path(flux_path: str) -> str:
    assert flux_path.startswith("./"), flux_path
    return flux_path.removeprefix("./")


def test_the_kustomization_deploys_an_overlay_from_the_git_repository(
    flux_objects: list[Manifest],
) -> None:
    source = one(flux_objects, "GitRepository")
    kustomization = one(flux_objects, "Kustomization")
    spec = kustomization["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    path = repo_path(spec["path"])
    assert (ROOT / path / "kustomization.yaml").exists()
    assert path.removeprefix("deploy/kubernetes/overlays/") in OVERLAYS
    assert spec["prune"] is True
    assert spec["timeout"]
    assert spec["decryption"]["provider"] == "sops"
    assert spec["decryption"]["secretRef"]["name"]
    assert spec["dependsOn"], "the overlays need the monitoring CRDs installed first"
    assert "!/deploy/kubernetes/" in source["spec"]["ignore"]


def test_image_automation_writes_into_the_deployed_overlay(flux_objects: list[Manifest]) -> None:
    automation = one(flux_objects, "ImageUpdateAutomation")
    source = one(flux_objects, "GitRepository")
    kustomization = one(flux_objects, "Kustomization")
    spec = automation["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert spec["update"]["strategy"] == "Setters"
    assert repo_path(kustomization["spec"]["path"]).startswith(repo_path(spec["update"]["path"]))
    assert spec["git"]["push"]["branch"] == source["spec"]["ref"]["branch"]


def overlay_markers(overlay: str) -> dict[str, tuple[str, str, str]]:
    """`images:` fields of an overlay's kustomization.yaml → (namespace, policy, field) markers."""
    text = (KUBERNETES / "overlays" / overlay / "kustomization.yaml").read_text(encoding="utf-8")
    markers = {}
    for line in text.splitlines():
        match = MARKER.search(line)
        if match:
            key = line.split(":", 1)[0].strip()
            value = line.split(":", 1)[1].split("#", 1)[0].strip()
            markers[f"{key}={value}"] = (match.group(1), match.group(2), match.group(3))
    return markers


@pytest.mark.parametrize("overlay", ["standalone", "ha", "reference"])
def test_overlays_carry_setter_markers_for_the_image_policy(
    flux_objects: list[Manifest], overlay: str
) -> None:
    policy = one(flux_objects, "ImagePolicy")
    repository = one(flux_objects, "ImageRepository")
    assert policy["spec"]["imageRepositoryRef"]["name"] == repository["metadata"]["name"]
    markers = overlay_markers(overlay)
    expected = (policy["metadata"]["namespace"], policy["metadata"]["name"])
    fields = {kind: text.split("=", 1)[1] for text, (*ref, kind) in markers.items()}
    assert {tuple(ref) for *ref, _ in markers.values()} == {expected}
    assert fields["name"] == repository["spec"]["image"]
    assert Version(fields["tag"]) in semver_range(policy["spec"]["policy"]["semver"]["range"])


def test_the_project_version_is_within_the_image_policy(flux_objects: list[Manifest]) -> None:
    policy = one(flux_objects, "ImagePolicy")
    assert project_version() in semver_range(policy["spec"]["policy"]["semver"]["range"])


def test_the_readme_walks_through_every_file() -> None:
    readme = (FLUX / "README.md").read_text(encoding="utf-8")
    for path in FLUX.glob("*.yaml"):
        assert path.name in readme, path.name
    for step in ("sops-age", "age-keygen", "email-relay/client", "flux get kustomizations"):
        assert step in readme, step
