"""Suite-wide settings, and the fixtures every package shares.

The fixtures that start real servers live beside their servers in tests/support/ and are
registered here once, for the whole suite: `dns_server`, `smarthost`, `standin` (the Graph
stand-in), `chromium` (Debian's Chromium, one per run), `browser` and `page` (Playwright on it), and
`postgres_server`, `database_url` and `db` (every store test on SQLite and on
PostgreSQL). Each starts its server on 127.0.0.1, port 0, and closes it. A test module uses them
by name, without importing them; the per-package conftest files hold what one package alone uses.

Two tiers. `slow` marks every test under `SLOW_AREAS` (relays started as `mxrelay serve`, real API
clients against one, the deployment rendered and run, the benchmarks' rig) and every one on
PostgreSQL (the `postgres` mark), here; elsewhere a test that starts a process (mxrelay, the delivery child, a proxy) or
waits seconds of real time says so itself with `@pytest.mark.slow`. `make unit` runs the rest
(`-m "not slow"`: in-process, on SQLite); `make test` runs everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).resolve().parent
SLOW_AREAS = frozenset({"bench", "clients", "deploy", "system"})

# One PostgreSQL cluster per test run, whoever asks first; a DNS server, a smarthost and a Graph
# stand-in per test that asks for one.
pytest_plugins = [
    "tests.support.postgres",
    "tests.support.dns_server",
    "tests.support.smarthost",
    "tests.support.graph_harness",
    "tests.support.browser",
]

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=int(os.environ.get("MXRELAY_HYPOTHESIS_EXAMPLES", "100")),
)
settings.load_profile("default")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of a slow area, and every test on PostgreSQL, is `slow`."""
    for item in items:
        in_slow_area = (
            item.path.is_relative_to(TESTS) and item.path.relative_to(TESTS).parts[0] in SLOW_AREAS
        )
        if in_slow_area or item.get_closest_marker("postgres") is not None:
            item.add_marker(pytest.mark.slow)
