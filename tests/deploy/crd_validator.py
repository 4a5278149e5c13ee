"""Validate Flux and Prometheus Operator objects against their CRD schemas with crd/validate.mjs.

The schemas come from the npm packages pinned in crd/package-lock.json (@kubernetes-models
compiles them from the controllers' API types, the source of the published CRDs); Python has no
maintained equivalent, so the check runs in Node.js. `npm ci` installs the pinned packages into
crd/node_modules the first time (and again whenever the lock file changes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.manifests import Manifest

CRD_DIR = Path(__file__).resolve().with_name("crd")


def _installed_matches_lock() -> bool:
    installed = CRD_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return False
    wanted = json.loads((CRD_DIR / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    have = json.loads(installed.read_text(encoding="utf-8"))["packages"]
    return all(
        have.get(path, {}).get("version") == entry.get("version")
        for path, entry in wanted.items()
        if path
    )


def ensure_installed() -> str:
    """Install the pinned packages if needed; return the path of `node`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("Node.js and npm are needed to validate the CRD-based objects")
    if not _installed_matches_lock():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=CRD_DIR,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return node


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
