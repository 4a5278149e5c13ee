"""What a failed write says about the store, and the probe that asks whether it takes writes.

The group committer (`commit.py`) must tell an outage, which fails every write and turns readiness
red, from a write refused for what it carries, which fails alone: `store_fault` decides from the
exception and its driver's code. `probe` is the write the committer makes while idle, and while
the store fails, to notice a broken store before a message needs it and a mended one without
waiting for traffic.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from mxrelay.store.backend import StoreError, describe_error

PROBE = "UPDATE alembic_version SET version_num = version_num"
"""The probe's write: it changes nothing, on the one table that holds exactly one row on every
dialect (the schema revision), yet it is a real write transaction, which a read-only, vanished or
unreachable store refuses, without a table of its own."""

PROBE_FREE_BYTES = 1024 * 1024
"""Below this much free space on its filesystem the probe calls a SQLite store full: the probe's
own write reuses the log's space and would succeed on a full disk."""


def probe(conn: Connection, items: Sequence[object] = ()) -> None:
    """A group-committer writer that asks whether the store takes writes (see `PROBE`). Any
    failure of it is the store's, and raised as StoreError (`store_fault`)."""
    del items
    try:
        if conn.dialect.name == "sqlite":
            _sqlite_room(conn)
        conn.exec_driver_sql(PROBE)
    except StoreError:
        raise
    except Exception as exc:  # whatever refuses this write refuses every write
        raise StoreError(f"the store refuses writes: {describe_error(exc)}") from exc


def _sqlite_room(conn: Connection) -> None:
    pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    if pages >= conn.exec_driver_sql("PRAGMA max_page_count").scalar_one():
        raise StoreError("the SQLite database is at its page limit")
    database = conn.engine.url.database
    if database:
        stat = os.statvfs(Path(database).parent)
        free = stat.f_bavail * stat.f_frsize
        if free < PROBE_FREE_BYTES:
            raise StoreError(f"the filesystem of the SQLite database has {free} bytes free")


_SQLITE_STORE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)
"""SQLite primary result codes that describe the database, not a statement's values."""

_POSTGRES_STORE_CLASSES = frozenset({"08", "53", "57", "58", "XX"})
"""SQLSTATE classes that describe the server: connection exception, insufficient resources (disk
full), operator intervention (shutdown), system error, internal error."""


def store_fault(exc: BaseException) -> bool:
    """Whether a failed write says the store is out (unreachable, read-only, full, gone) rather
    than that this write was refused (a value, a constraint): the first fails every write, the
    second only its own. Pure: decided from the exception and its driver's code."""
    if isinstance(exc, OSError | StoreError | TimeoutError):
        return True
    if isinstance(exc, sqlite3.Error):  # raised unwrapped by `bulk.py`'s SQLite writes
        orig: BaseException | None = exc
    elif isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
    else:
        return False
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_STORE_CODES
    state = getattr(orig, "sqlstate", None)
    if not isinstance(state, str):
        return False
    if state == "08P01":  # protocol violation: how PostgreSQL refuses a NUL in a text value
        return False
    return state == "25006" or state[:2] in _POSTGRES_STORE_CLASSES  # 25006: read-only
