"""The backend contract: the named queries of both dialects, and how a driver's error is told."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from mxrelay.store.backend import Dialect, describe_error, load_queries


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
