"""Fixtures for the deployment tests: every Kustomize folder rendered once per test session."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import FLUX, KUBERNETES, OVERLAYS, Manifest, render


@pytest.fixture(scope="session")
def overlays() -> dict[str, list[Manifest]]:
    """Each overlay under deploy/kubernetes/overlays, rendered by `kubectl kustomize`."""
    return {name: render(KUBERNETES / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def flux_objects() -> list[Manifest]:
    return render(FLUX)


@pytest.fixture(scope="session")
def ingress_example() -> list[Manifest]:
    return render(KUBERNETES / "examples" / "ingress-ui")
