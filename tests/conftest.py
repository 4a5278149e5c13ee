"""Suite-wide settings, and the fixtures every package shares.

The fixtures that start real servers live beside their servers in tests/support/ and are
registered here once, for the whole suite: `dns_server`, `smarthost`, `standin` (the Graph
stand-in), and `postgres_server`, `database_url` and `db` (every store test on SQLite and on
PostgreSQL). Each starts its server on 127.0.0.1, port 0, and closes it. A test module uses them
by name, without importing them; the per-package conftest files hold what one package alone uses.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# One PostgreSQL cluster per test run, whoever asks first; a DNS server, a smarthost and a Graph
# stand-in per test that asks for one.
pytest_plugins = [
    "tests.support.postgres",
    "tests.support.dns_server",
    "tests.support.smarthost",
    "tests.support.graph_harness",
]

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=int(os.environ.get("MXRELAY_HYPOTHESIS_EXAMPLES", "100")),
)
settings.load_profile("default")
