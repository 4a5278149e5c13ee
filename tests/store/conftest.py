"""Store fixtures: every store test runs on SQLite and on a throw-away PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mxrelay.store.db import Database, open_store
from tests.support import postgres

postgres_server = postgres.postgres_server
postgres_url = postgres.postgres_url
database_url = postgres.database_url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with open_store(database_url) as database:
        yield database
