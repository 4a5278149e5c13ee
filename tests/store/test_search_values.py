"""Mailpit's sizes and the dates people and scripts type, read the way Mailpit reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.store.search_values import parse_date, size_to_bytes

MAY_1 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("100", 100),
        ("2k", 2048),
        ("2kb", 2048),
        ("1.5m", 1572864),
        ("1.5 mb", 1572864),
        ("2g", 0),
        ("2kib", 0),
        ("k", 0),
        ("-1", 0),
        ("1e5", 0),
        ("", 0),
        ("9" * 33, 0),
        ("9" * 32, 2**63 - 1),
    ],
)
def test_sizes(value: str, size: int) -> None:
    assert size_to_bytes(value) == size


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2024-05-01", MAY_1),
        ("2024-05", MAY_1),
        ("2024-05-01 13:00", MAY_1 + timedelta(hours=13)),
        ("2024-05-01T13:00:00+02:00", MAY_1 + timedelta(hours=11)),
        ("2024-05-01T13:00:00.250Z", MAY_1 + timedelta(hours=13, milliseconds=250)),
        ("2024/05/01", MAY_1),
        ("2024.05.01", MAY_1),
        ("05/01/2024", MAY_1),
        ("5/1/24", MAY_1),
        ("5/1/2024 3:04 PM", MAY_1 + timedelta(hours=15, minutes=4)),
        ("1 MAY 2024", MAY_1),
        ("MAY 1 2024", MAY_1),
        ("MAY 1ST 2024", MAY_1),
        ("WEDNESDAY 1 MAY 2024", MAY_1),
        ("WED 01 MAY 2024 13:00:00 +0000", MAY_1 + timedelta(hours=13)),
        ("WED MAY 1 13:00:00 2024", MAY_1 + timedelta(hours=13)),
        ("2024-MAY-01", MAY_1),
        ("1714521600", MAY_1),
        ("1714521600000", MAY_1),
        ("20240501", MAY_1),
        ("20240501130000", MAY_1 + timedelta(hours=13)),
    ],
)
def test_dates(value: str, moment: datetime) -> None:
    assert parse_date(value) == moment.timestamp()


@pytest.mark.parametrize(
    "value",
    ["", "YESTERDAY", "13/13/2024", "2024-02-30", "2024-05-01T25:00", "1 2 3", "0/0/0", "X" * 65],
)
def test_what_cannot_be_read(value: str) -> None:
    assert parse_date(value) is None


def test_a_date_without_a_zone_is_in_the_given_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse_date("2024-05-01", plus_two) == (MAY_1 - timedelta(hours=2)).timestamp()
    assert parse_date("2024-05-01T00:00Z", plus_two) == MAY_1.timestamp()


@given(st.text(max_size=80))
def test_any_text_is_read_or_refused_without_error(value: str) -> None:
    parse_date(value.upper())
    size_to_bytes(value.lower())
