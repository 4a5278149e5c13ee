"""Many rows per statement on the group committer's hot path, with little work per row.

On SQLite the rows go straight to pysqlite, past SQLAlchemy altogether: its per-row parameter
processing, and even `Connection.exec_driver_sql`'s per-statement bookkeeping, cost more than
SQLite's own work for the rows of an accepted message, and that work holds the interpreter lock
(a lone write's batch even runs on the event loop: `db.write_batch`), where every microsecond is
taken from the SMTP sessions. A table's rows go in multi-row `INSERT ... VALUES (...), (...)`
statements, not `executemany`: pysqlite lets go of the interpreter lock for each step of a
statement, and a group-commit batch is written on the store's writer thread while the event loop
runs, so with `executemany` every row cost the thread a wait to take the lock back; now a few
statements per table do (measured at 20 sessions, see docs/architecture/store.md). The statements
take power-of-two numbers of rows (`pieces`), so that each table has a few texts, all kept
prepared in pysqlite's statement cache. pysqlite's errors are raised as they are
(`faults.store_fault` reads both). The rows are mappings whose values already have their
column's Python type (str, int, float, bool, bytes, None), which is all pysqlite needs.

On PostgreSQL each round trip to the server costs as much as a statement's work there, and
SQLAlchemy Core's per-statement work (cache keys, parameter processing) more: the rows of a table
go as one array per column (`INSERT ... SELECT * FROM unnest($1::text[], ...)`), and the tables
written together (an accepted message's log rows and queue entries; a batch of delivery
results, whose rows also UPDATE: `postgres_write`) as one statement, a data-modifying `WITH` per
table, through `Connection.exec_driver_sql`, so that a failure is wrapped, and a lost connection
noticed, as for any other statement.

Every row passes through `storable_row` first: the text in it comes from clients and messages, and
a value either database refuses must cost its own characters, never the transaction it shares
with other messages (see `storable`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import TableClause, TextClause
from sqlalchemy.engine import Connection

from mxrelay.mime.text import without_surrogates

Rows = Sequence[Mapping[str, Any]]
TableRows = tuple[TableClause, Rows]
"""One table's rows to INSERT (all rows have the same keys: the columns written)."""

REPLACEMENT = "\ufffd"
"""What stands in for a character the databases cannot store (U+FFFD, as decoders use)."""

SQLITE_MAX_PARAMETERS = 999
"""Parameters per statement: the smallest limit any SQLite build has had (newer ones allow more)."""

POSTGRES_ARRAYS = MappingProxyType(
    {str: "text[]", int: "bigint[]", float: "float8[]", bool: "boolean[]", bytes: "bytea[]"}
)
"""The array parameter a column's values travel in on PostgreSQL, by the column's Python type
(the server casts each element to the column's own type on INSERT, as it casts a parameter)."""


def storable(text: str) -> str:
    """`text` as both databases can store it: NUL (refused in PostgreSQL text) and lone surrogates
    (which decoders such as utf-7 and unicode_escape produce, and which no UTF-8 encoder takes)
    become U+FFFD (`mime.text.without_surrogates`). Pure; the common cases (ASCII, valid text)
    cost a scan and return `text` itself."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    return text if text.isascii() else without_surrogates(text)


def stored_as_is(text: str) -> bool:
    """Whether `text` is stored unchanged (`storable` leaves it alone). Request text that is not
    (a NUL, a lone surrogate) equals no stored value, so looking it up finds nothing, and must not
    be tried: PostgreSQL refuses a NUL even as a parameter. Pure."""
    return storable(text) == text


def storable_row(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """`row` with every text value `storable` (the same mapping when nothing needed a change)."""
    changed: dict[str, Any] | None = None
    for key, value in row.items():
        # ASCII without NUL, most values, is decided here: a call per value would cost more
        # than the rest of a message's rows.
        if type(value) is str and (not value.isascii() or "\x00" in value):
            fixed = storable(value)
            if fixed is not value:
                changed = dict(row) if changed is None else changed
                changed[key] = fixed
    return row if changed is None else changed


def storable_rows(rows: Rows) -> list[Mapping[str, Any]]:
    return [storable_row(row) for row in rows]


def _sqlite(conn: Connection) -> sqlite3.Connection | None:
    """The pysqlite connection under `conn` on SQLite; None on PostgreSQL."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def insert_many(conn: Connection, table: TableClause, rows: Rows) -> None:
    """INSERT every row (all rows have the same keys: the columns written)."""
    insert_tables(conn, [(table, rows)])


def insert_tables(conn: Connection, tables: Sequence[TableRows]) -> None:
    """INSERT the rows of several tables, in this order; on PostgreSQL in one statement."""
    tables = _storable_tables(tables)
    if not tables:
        return
    driver = _sqlite(conn)
    if driver is None:
        conn.exec_driver_sql(*_postgres_insert(tables))
        return
    for table, rows in tables:
        columns = list(rows[0])
        for piece in _sqlite_pieces(rows, columns):
            driver.execute(_sqlite_insert(table, columns, len(piece)), _flat(piece, columns))


def insert_returning(
    conn: Connection,
    table: TableClause,
    rows: Rows,
    returning: Sequence[str],
    key: Sequence[str],
    *,
    before: Sequence[TableRows] = (),
) -> list[tuple[Any, ...]]:
    """INSERT every row and return the `returning` columns of each, in the order of `rows`;
    `key` names the columns (among `returning`) that tell the new rows apart. The rows of
    `before` are written first (`insert_tables`; on PostgreSQL in the same statement).

    SQLite: multi-row `INSERT ... VALUES (...), (...) RETURNING` statements (`pieces`; the order
    of RETURNING rows is not promised on either database, hence the key)."""
    if not rows:
        insert_tables(conn, before)
        return []
    rows = storable_rows(rows)
    positions = [returning.index(name) for name in key]
    created: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    driver = _sqlite(conn)
    if driver is None:
        sql, params = _postgres_insert([*_storable_tables(before), (table, rows)], returning)
        for row in conn.exec_driver_sql(sql, params):
            created[tuple(row[p] for p in positions)] = tuple(row)
        return [created[tuple(row[name] for name in key)] for row in rows]
    insert_tables(conn, before)
    columns = list(rows[0])
    suffix = f" RETURNING {', '.join(returning)}"
    for piece in _sqlite_pieces(rows, columns):
        sql = _sqlite_insert(table, columns, len(piece)) + suffix
        for row in driver.execute(sql, _flat(piece, columns)):
            created[tuple(row[p] for p in positions)] = tuple(row)
    return [created[tuple(row[name] for name in key)] for row in rows]


def pieces(count: int, most: int) -> Iterator[tuple[int, int]]:
    """(start, size) of the statements that write `count` rows: sizes powers of two, largest
    first, none larger than `most` rounded down to a power of two, so that 7 rows go as 4, 2 and
    1 and a table never has more than about ten statement texts. Pure."""
    largest = 1 << (max(most, 1).bit_length() - 1)
    start = 0
    while start < count:
        size = min(largest, 1 << ((count - start).bit_length() - 1))
        yield start, size
        start += size


def _sqlite_pieces(rows: Rows, columns: Sequence[str]) -> Iterator[Rows]:
    most = SQLITE_MAX_PARAMETERS // len(columns)
    for start, size in pieces(len(rows), most):
        yield rows[start : start + size]


def _sqlite_insert(table: TableClause, columns: Sequence[str], count: int) -> str:
    marks = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([marks] * count)}"


def _flat(rows: Rows, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[column] for row in rows for column in columns)


def _storable_tables(tables: Sequence[TableRows]) -> list[TableRows]:
    """The tables that have rows, each row `storable_row`."""
    return [(table, storable_rows(rows)) for table, rows in tables if rows]


def _postgres_insert(
    tables: Sequence[TableRows], returning: Sequence[str] = ()
) -> tuple[str, tuple[list[Any], ...]]:
    """One statement that INSERTs the rows of every table (each with rows, storable), and its
    parameters: `WITH t0 AS (INSERT ...), t1 AS (INSERT ...) INSERT ... [RETURNING ...]`, the
    last table's INSERT the main one. The text depends only on the tables and columns, so the
    driver prepares it once per connection."""
    params: list[list[Any]] = []
    parts = [_insert_part(table, rows, params) for table, rows in tables]
    if returning:
        parts[-1] += f" RETURNING {', '.join(returning)}"
    return _one_statement(parts), tuple(params)


@dataclass(frozen=True, slots=True)
class Update:
    """Rows that UPDATE `table` (`postgres_write`): each row changes the rows of `table` whose
    `match` columns equal its own, if they also pass `where`; `assign` is the SET list, where
    `v.<column>` is the row's value and `t.<column>` the table's (the row's keys are columns of
    `table`, whose types their arrays take). No two rows may match the same row of `table`:
    PostgreSQL would apply one of them, unpredictably which."""

    table: TableClause
    rows: Rows
    match: tuple[str, ...]
    assign: str
    where: str = "TRUE"


def postgres_write(
    conn: Connection, inserts: Sequence[TableRows], updates: Sequence[Update]
) -> None:
    """INSERT and UPDATE the rows of several tables in one statement on PostgreSQL (a
    data-modifying `WITH` per part; parts without rows left out). Every part sees the database
    as the statement found it, so none may depend on another's changes."""
    params: list[list[Any]] = []
    parts = [_insert_part(table, rows, params) for table, rows in _storable_tables(inserts)]
    for update in updates:
        if update.rows:
            parts.append(_update_part(update, storable_rows(update.rows), params))
    if parts:
        conn.exec_driver_sql(_one_statement(parts), tuple(params))


def _arrays(table: TableClause, columns: Sequence[str], rows: Rows, params: list[list[Any]]) -> str:
    """`unnest($n::type[], ...)` of the values of `columns` in `rows`, each column's array
    appended to `params`."""
    arrays = []
    for column, array in zip(columns, _array_types(table, tuple(columns)), strict=True):
        params.append([row[column] for row in rows])
        arrays.append(f"${len(params)}::{array}")
    return f"unnest({', '.join(arrays)})"


@functools.cache
def _array_types(table: TableClause, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The array type of each of `columns` (`POSTGRES_ARRAYS`). Looked up once per table and
    columns, of which the code writes a few dozen: SQLAlchemy's column lookup and `python_type`
    cost more, for a message's rows, than building their arrays (a twentieth of the accepting
    process's CPU at one session, measured)."""
    return tuple(POSTGRES_ARRAYS[table.c[column].type.python_type] for column in columns)


def _insert_part(table: TableClause, rows: Rows, params: list[list[Any]]) -> str:
    columns = list(rows[0])
    values = _arrays(table, columns, rows, params)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {values}"


def _update_part(update: Update, rows: Rows, params: list[list[Any]]) -> str:
    columns = list(rows[0])
    values = _arrays(update.table, columns, rows, params)
    match = " AND ".join(f"t.{column} = v.{column}" for column in update.match)
    return (
        f"UPDATE {update.table.name} AS t SET {update.assign} "
        f"FROM {values} AS v({', '.join(columns)}) WHERE {match} AND ({update.where})"
    )


def _one_statement(parts: Sequence[str]) -> str:
    """The parts as one statement: every part but the last in a `WITH` of its own."""
    *first, main = parts
    if not first:
        return main
    return "WITH " + ", ".join(f"t{n} AS ({sql})" for n, sql in enumerate(first)) + " " + main


def execute_many(conn: Connection, statement: TextClause, rows: Rows) -> None:
    """A named query (`sql/*.sql`, `:name` parameters) once per row."""
    if not rows:
        return
    rows = storable_rows(rows)
    driver = _sqlite(conn)
    if driver is not None:
        driver.executemany(statement.text, rows)
    else:
        conn.execute(statement, list(rows))
