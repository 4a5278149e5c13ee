"""Validate Flux and Prometheus Operator objects against their CRD schemas with crd/validate.mjs.

The schemas come from the npm packages pinned in crd/package-lock.json (@kubernetes-models
compiles them from the controllers' API types, the source of the published CRDs); Python has no
maintained equivalent, so the check runs in Node.js. `npm ci` installs the pinned packages into
crd/node_modules the first time (and again whenever the lock file changes).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.manifests import Manifest
from tests.support import npm

CRD_DIR = Path(__file__).resolve().with_name("crd")


def ensure_installed() -> str:
    """Install the pinned packages if needed; return the path of `node`."""
    return npm.ensure_installed(CRD_DIR, "to validate the CRD-based objects")


def validate(node: str, objects: list[Manifest]) -> list[dict[str, Any]]:
    """One result per object: kind, name and error (None when the object is valid)."""
    result = subprocess.run(
        [node, str(CRD_DIR / "validate.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(result.stdout)
    assert len(results) == len(objects)
    return results
