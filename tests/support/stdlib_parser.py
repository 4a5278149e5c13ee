"""A stand-in for the standard library's header parser (`mime.addresses._PARSER`) that records
what it is handed: tests of the parser budgets count characters instead of timing the parser."""

from __future__ import annotations

import email.policy


class RecordingParser:
    """The stdlib's header parser, recording the length of every text it is handed."""

    def __init__(self) -> None:
        self.handed: list[int] = []

    def header_factory(self, name: str, value: str) -> object:
        self.handed.append(len(value))
        return email.policy.default.header_factory(name, value)
