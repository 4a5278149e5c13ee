"""Store fixtures: every store test runs on SQLite and on a throw-away PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mxrelay.store.backend import Database
from mxrelay.store.open import open_store


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with open_store(database_url) as database:
        yield database
