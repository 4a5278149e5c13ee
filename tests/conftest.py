"""Suite-wide settings. Fixtures that start real servers live in tests/support/ and the
per-package conftest files; each starts its server on 127.0.0.1, port 0, and closes it."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Fixture modules shared across packages (one PostgreSQL cluster per test run, whoever asks first).
pytest_plugins = ["tests.support.postgres"]

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=int(os.environ.get("MXRELAY_HYPOTHESIS_EXAMPLES", "100")),
)
settings.load_profile("default")
