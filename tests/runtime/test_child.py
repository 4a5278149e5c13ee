"""The delivery process itself, as the relay starts it: the module path in `CHILD_COMMAND` runs,
wants its socket, and loads only what smarthost delivery needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mxrelay.runtime.child import CHILD_COMMAND

pytestmark = pytest.mark.slow  # each test starts the delivery child


def test_the_child_command_runs_and_wants_its_socket() -> None:
    result = subprocess.run(
        [*CHILD_COMMAND], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "usage: python -m mxrelay.runtime.child FD" in result.stderr


def test_the_delivery_process_loads_no_graph_code() -> None:
    code = (
        "import sys, mxrelay.runtime.child\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'msal', 'httpx'}"
        " or m.startswith('mxrelay.delivery.graph')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
