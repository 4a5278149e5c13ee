"""What the system tests share: a scratch directory for a relay's store and logs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mxrelay-system-") as path:
        yield Path(path)
