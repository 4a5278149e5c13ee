"""The event poller's position in a table: keys committed out of order are awaited, keys handed
out again after a deletion are read again, and nothing is handed out twice."""

from __future__ import annotations

from mxrelay.store.cursor import AWAITED_LIMIT, RECENT, KeyCursor, Row


def rows(*keys: int) -> list[Row]:
    return [Row(key, f"row{key}", key) for key in keys]


def keys(found: list[Row]) -> list[int]:
    return [row.key for row in found]


def test_rows_are_handed_out_once_in_key_order() -> None:
    cursor = KeyCursor(0, gap_wait=0.0)
    assert keys(cursor.take(rows(2, 1, 3), now=0.0)) == [1, 2, 3]
    assert keys(cursor.take(rows(3, 4), now=0.0)) == [4]
    assert cursor.last == 4


def test_a_key_committed_late_is_awaited_and_handed_out_when_it_comes() -> None:
    cursor = KeyCursor(0, gap_wait=10.0)
    assert keys(cursor.take(rows(1, 3), now=0.0)) == [1, 3]
    assert cursor.awaited == [2]
    assert keys(cursor.take(rows(2, 4), now=1.0)) == [2, 4]
    assert cursor.awaited == []
    assert keys(cursor.take(rows(2), now=2.0)) == []  # never twice


def test_a_key_that_never_comes_is_given_up_after_the_wait() -> None:
    cursor = KeyCursor(0, gap_wait=10.0)
    cursor.take(rows(5), now=0.0)
    assert cursor.awaited == [1, 2, 3, 4]
    cursor.take([], now=9.0)
    assert cursor.awaited == [1, 2, 3, 4]
    cursor.take([], now=10.0)
    assert cursor.awaited == []


def test_keys_in_order_await_nothing() -> None:
    """SQLite commits in key order: a gap there is a rolled-back insert, never awaited."""
    cursor = KeyCursor(0, gap_wait=0.0)
    cursor.take(rows(1, 5), now=0.0)
    assert cursor.awaited == []


def test_a_large_jump_awaits_a_bounded_number_of_keys() -> None:
    cursor = KeyCursor(0, gap_wait=10.0)
    cursor.take(rows(10 * AWAITED_LIMIT), now=0.0)
    assert len(cursor.awaited) == AWAITED_LIMIT


def test_rewinding_forgets_what_was_handed_out_above() -> None:
    cursor = KeyCursor(0, gap_wait=0.0)
    cursor.take(rows(*range(1, 2 * RECENT)), now=0.0)
    assert len(cursor.recent) == RECENT
    cursor.rewind(RECENT + 10)
    assert cursor.last == RECENT + 10
    assert all(row.key <= RECENT + 10 for row in cursor.recent)
    again = [Row(key, f"new{key}", key) for key in range(RECENT + 11, RECENT + 13)]
    assert keys(cursor.take(again, now=0.0)) == [RECENT + 11, RECENT + 12]
