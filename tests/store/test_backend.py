"""The backend contract: the named queries of both dialects, and how a driver's error is told."""

from __future__ import annotations

import sqlite3

from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from mxrelay.store.backend import Dialect, describe_error, load_queries, statement


def test_both_dialects_name_the_same_queries() -> None:
    assert load_queries(Dialect.SQLITE).keys() == load_queries(Dialect.POSTGRESQL).keys()


def test_an_error_is_told_in_the_drivers_words_without_sql_or_parameters() -> None:
    driver = sqlite3.OperationalError("database or disk is full\nsecond line")
    wrapped = OperationalError("INSERT INTO recipients VALUES (?)", ("bob@example.org",), driver)
    told = describe_error(wrapped)
    assert told == "OperationalError: database or disk is full"
    assert "bob@example.org" not in told
    assert describe_error(wrapped, limit=16) == "OperationalError"
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_a_parameter_written_in_takes_a_list() -> None:
    query = statement(
        "SELECT n FROM (SELECT 1 AS n UNION SELECT 2 UNION SELECT 3) "
        "WHERE n IN :wanted AND n <> :but ORDER BY n"
    )
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert conn.execute(query, {"wanted": [1, 2, 3], "but": 2}).scalars().all() == [1, 3]
            assert conn.execute(query, {"wanted": [], "but": 2}).scalars().all() == []
    finally:
        engine.dispose()
