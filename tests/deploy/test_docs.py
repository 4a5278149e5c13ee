"""The documents an operator follows link only to what exists: every relative link of the README,
the operations guide and the Flux README names a file of the repository, and every anchor one of
its headings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.manifests import FLUX, OPERATIONS_GUIDE, ROOT
from tests.deploy.test_alerts import github_anchors

DOCUMENTS = [ROOT / "README.md", OPERATIONS_GUIDE, FLUX / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(document: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(document.read_text(encoding="utf-8"))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(document: Path) -> None:
    for target in relative_links(document):
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        assert file.exists(), f"{document.name} links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in github_anchors(file.read_text(encoding="utf-8")), target


def test_the_readme_links_the_recipient_validation_rules() -> None:
    assert "docs/recipient-validation.md" in relative_links(ROOT / "README.md")
    rules = (ROOT / "docs" / "recipient-validation.md").read_text(encoding="utf-8")
    for rule in ("A1", "B1", "B6", "C5", "D1"):
        assert f"| {rule} |" in rules, rule
