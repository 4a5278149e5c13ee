"""Where an event poller is in one table's ascending keys, so that no row is announced twice or
missed (pure: the reads are `feed.py`'s).

A poller reads `WHERE key > last`. Two things make a plain high-water mark wrong:

- **Keys committed out of order (PostgreSQL).** A sequence hands out keys when rows are inserted,
  not when they commit: a transaction holding key 7 may commit after one holding key 8 was read.
  So a key skipped on the way up is awaited for `gap_wait` seconds (`awaited`, read by key), and
  announced when it appears; a key that never appears (a rolled-back insert) is given up then.
  SQLite commits one writer at a time, in key order: there, `gap_wait` is 0 and nothing is awaited.
- **Keys handed out again (SQLite).** A rowid is one more than the largest in the table, so when
  the newest rows are deleted (an API delete of the newest messages, an emptied log), the next
  rows get keys the poller has already passed. The poller remembers the identity of the last rows
  it handed out (`recent`); when the newest of them is gone or is another row, it goes back
  (`rewind`) to the newest of them still there, or, when none is, to the newest row older than
  all of them (the caller's query by the table's arrival order), and reads on from there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RECENT = 32
"""Rows whose identity is remembered, to notice that the newest were deleted."""

AWAITED_LIMIT = 1000
"""Missing keys awaited at once; a larger jump (a sequence's cache, a large rollback) is not
awaited past this."""


@dataclass(frozen=True, slots=True)
class Row:
    """A row as the cursor sees it: its key, what makes it that row, its place in arrival order
    (for the way back after a mass deletion), and what the poller will announce."""

    key: int
    identity: str
    order: Any
    value: Any = None


class KeyCursor:
    """One table's position for one poller."""

    def __init__(self, last: int, *, gap_wait: float) -> None:
        self.last = last
        """The highest key handed out."""
        self.gap_wait = gap_wait
        self._awaited: dict[int, float] = {}
        self.recent: deque[Row] = deque(maxlen=RECENT)

    @property
    def awaited(self) -> list[int]:
        """Keys below `last` not seen yet, still awaited (read them by key)."""
        return sorted(self._awaited)

    def take(self, rows: Iterable[Row], now: float) -> list[Row]:
        """The rows not handed out before, in key order; they count as handed out now."""
        fresh: list[Row] = []
        for row in sorted(rows, key=lambda r: r.key):
            if row.key <= self.last:
                if self._awaited.pop(row.key, None) is None:
                    continue
            else:
                self._await_between(self.last, row.key, now)
                self.last = row.key
            fresh.append(row)
            self.recent.append(row)
        self._expire(now)
        return fresh

    def _await_between(self, low: int, high: int, now: float) -> None:
        if self.gap_wait <= 0:
            return
        room = AWAITED_LIMIT - len(self._awaited)
        for missing in range(low + 1, min(high, low + 1 + max(room, 0))):
            self._awaited[missing] = now

    def _expire(self, now: float) -> None:
        for key in [k for k, since in self._awaited.items() if now - since >= self.gap_wait]:
            del self._awaited[key]

    def newest_recent(self) -> Row | None:
        return self.recent[-1] if self.recent else None

    def rewind(self, to: int) -> None:
        """Go back to key `to`: the rows handed out above it are gone, their keys may come again."""
        self.last = to
        self._awaited = {k: since for k, since in self._awaited.items() if k <= to}
        kept = [row for row in self.recent if row.key <= to]
        self.recent.clear()
        self.recent.extend(kept)
