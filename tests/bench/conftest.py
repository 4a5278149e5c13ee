"""Fixtures for the benchmarks' tests."""

from __future__ import annotations

import pytest

from bench import rig


@pytest.fixture
def rig_machine() -> None:
    """Skips the test where the rig cannot run (not root, a program missing), saying why."""
    try:
        rig.require_rig()
    except rig.Unavailable as exc:
        pytest.skip(str(exc))
