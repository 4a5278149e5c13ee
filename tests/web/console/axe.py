"""axe-core for the accessibility test: the npm package pinned in package-lock.json beside this
file, installed by `npm ci` (the Makefile's test install does it; so does `ensure_installed`
the first time, or when the lock file changed) and evaluated in the page under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.support import npm

HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"


def ensure_installed() -> Path:
    npm.ensure_installed(HERE, "to install axe-core (make test installs it)")
    return AXE


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical on the page as it is now (WCAG 2.x A and
    AA rules and axe's best practices), each with the elements it found."""
    page.evaluate(ensure_installed().read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const found = await axe.run(document, {resultTypes: ['violations']});
            return found.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5),
            }));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]
