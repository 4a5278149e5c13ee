"""What mxrelay's own routes (`/api/v1/mxrelay/`) read from a query string, read alike by all of
them: times (`since`, `until`) and text filters. Paging is `context.window`'s (`start`, `limit`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

PREFIX = "/api/v1/mxrelay"
"""Where mxrelay's own routes live, apart from Mailpit's."""

FILTER_LENGTH = 512
"""Characters of a text filter; a longer one is refused with 400."""
LATEST = 253_402_300_799.0
"""The last second of year 9999: later times cannot be written in RFC 3339."""


def parse_time(value: str, name: str) -> float:
    """RFC 3339 (a zone-less time is UTC) or Unix seconds; ValueError naming the parameter."""
    text = value.strip()
    problem = f"{name} must be an RFC 3339 time or Unix seconds"
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(problem) from None
        seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not 0 <= seconds <= LATEST:
        raise ValueError(problem + " (from 1970 to 9999)")
    return seconds


def text_filter(params: Any, name: str) -> str | None:
    """The filter `name`, stripped; None when absent or blank; ValueError when too long or
    holding a NUL (which no stored text has, and PostgreSQL refuses even to compare)."""
    value = params.get(name, "").strip()
    if len(value) > FILTER_LENGTH:
        raise ValueError(f"{name} must be at most {FILTER_LENGTH} characters")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain a NUL character")
    return value or None


def time_filter(params: Any, name: str) -> float | None:
    """The time `name` (`parse_time`); None when absent or blank."""
    value = text_filter(params, name)
    return None if value is None else parse_time(value, name)
