"""npm packages the suite runs in Node.js, pinned by a package-lock.json in their folder and
installed with `npm ci` (the Makefile's test install step does it; so does the first test that
needs them, and again whenever the lock file changes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path


def installed_matches_lock(folder: Path) -> bool:
    installed = folder / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return False
    wanted = json.loads((folder / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    have = json.loads(installed.read_text(encoding="utf-8"))["packages"]
    return all(
        have.get(path, {}).get("version") == entry.get("version")
        for path, entry in wanted.items()
        if path
    )


def ensure_installed(folder: Path, purpose: str) -> str:
    """Install `folder`'s pinned packages if needed; return the path of `node`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(f"Node.js and npm are needed {purpose}")
    if not installed_matches_lock(folder):
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return node
