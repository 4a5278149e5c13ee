"""What a scanner's searches read, counted, so that a test can show it linear by counting rather
than by timing: every compiled pattern of the modules watched is wrapped, and each `match`,
`search` and `finditer` adds the characters from where it started to where its match ended (to
the end of the input when it found nothing), and one for a look past that.

That is all a pattern reads when it cannot fail part-way and give back what it read: the modules
watched are written so (`mime/htmltags.py`, `mime/htmlmeta.py`: possessive patterns that match
the empty string, or fail at their first character), and do every search with their patterns.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest


class Reads:
    def __init__(self) -> None:
        self.count = 0

    def watch(self, monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> None:
        """Count the searches of every pattern of `modules` (in a dict of them too)."""
        for module in modules:
            for name, value in vars(module).items():
                if isinstance(value, re.Pattern):
                    monkeypatch.setattr(module, name, _Counted(value, self))
                elif isinstance(value, dict) and any(
                    isinstance(item, re.Pattern) for item in value.values()
                ):
                    counted = {key: _Counted(item, self) for key, item in value.items()}
                    monkeypatch.setattr(module, name, counted)


class _Counted:
    def __init__(self, pattern: re.Pattern[str], reads: Reads) -> None:
        self.pattern = pattern
        self.reads = reads

    def match(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        found = self.pattern.match(string, pos, endpos)
        self.reads.count += 1 + (pos if found is None else found.end()) - pos
        return found

    def search(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        found = self.pattern.search(string, pos, endpos)
        self.reads.count += 1 + (min(len(string), endpos) if found is None else found.end()) - pos
        return found

    def finditer(self, string: str, pos: int = 0) -> Iterator[re.Match[str]]:
        for found in self.pattern.finditer(string, pos):
            self.reads.count += 1 + found.end() - pos
            pos = found.end()
            yield found
        self.reads.count += len(string) - pos
