"""The relays the client tests drive, with users (the clients log in as OPERATOR): one with the
seeded corpus per module (for the calls that only read), a fresh one per test (for those that
change the log)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api_relay import ApiRelay, api_relay


@pytest.fixture(scope="module")
def seeded() -> Iterator[ApiRelay]:
    with api_relay(users=True) as relay:
        yield relay


@pytest.fixture
def fresh() -> Iterator[ApiRelay]:
    with api_relay(users=True) as relay:
        yield relay
