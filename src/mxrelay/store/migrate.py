"""Alembic, driven from code: upgrade a connection to the newest schema, or ask whether it is there.

The migration scripts live in `migrations/versions/` (rules in `migrations/README.md`). No
`alembic.ini` is needed: the configuration is built here and the open connection is handed to
`migrations/env.py` through `Config.attributes`, so migrations always run on the store's own engine
(and, on SQLite, under its write lock).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_is_head(connection: Connection) -> bool:
    return current_revision(connection) == head_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)
