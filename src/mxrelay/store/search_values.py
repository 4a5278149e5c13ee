"""The values inside search terms: Mailpit's sizes (`larger:2M`) and dates (`after:2024-05-01`);
pure and bounded.

Mailpit reads dates with the `dateparse` library, which guesses among hundreds of layouts; this
reads the ones people type and scripts send, the same way: ISO 8601 (`2024-05-01`,
`2024-05-01T13:00:00+02:00`), year first with slashes or dots, US order for ambiguous numeric dates
(`05/01/2024` is May 1st), month names (`1 May 2024`, `May 1 2024`, `Wed, 01 May 2024 13:00:00
+0000`), and digits alone (Unix seconds or milliseconds, `YYYYMMDD`, `YYYYMMDDhhmmss`). A date
without a zone is in the request's `tz` (UTC when none is given); a date it cannot read is ignored,
as Mailpit ignores it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

DATE_LIMIT = 64
"""Characters of a date value read at all."""
SIZE_LIMIT = 32
"""Characters of a size value read at all."""
MAX_SIZE = 2**63 - 1

_SIZE = re.compile(r"([0-9]+)(\.[0-9]+)?[ \t\n\f\r]?([a-z]{1,2})?")
_UNITS = {"": 1, "k": 1024, "kb": 1024, "m": 1024 * 1024, "mb": 1024 * 1024}


def size_to_bytes(value: str) -> int:
    """Mailpit's `sizeToBytes`: `2kb`, `4MB`, `1.5m` or bytes; 0 when unreadable (then the term
    is searched as text, as Mailpit does). K and KB are 1024 bytes, M and MB 1024 KB."""
    match = _SIZE.fullmatch(value.lower()[: SIZE_LIMIT + 1]) if len(value) <= SIZE_LIMIT else None
    if match is None or (match.group(3) is not None and match.group(3) not in _UNITS):
        return 0
    number = float(match.group(1) + (match.group(2) or "")) * _UNITS[match.group(3) or ""]
    return int(min(number, MAX_SIZE)) if math.isfinite(number) else 0


_MONTHS = {
    name: index
    for index, names in enumerate(
        (
            ("JAN", "JANUARY"),
            ("FEB", "FEBRUARY"),
            ("MAR", "MARCH"),
            ("APR", "APRIL"),
            ("MAY",),
            ("JUN", "JUNE"),
            ("JUL", "JULY"),
            ("AUG", "AUGUST"),
            ("SEP", "SEPT", "SEPTEMBER"),
            ("OCT", "OCTOBER"),
            ("NOV", "NOVEMBER"),
            ("DEC", "DECEMBER"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + ")"
_WEEKDAY = r"(?:(?:MON|TUE|WED|THU|FRI|SAT|SUN)[A-Z]*\.?\s+)?"
_TIME = (
    r"(?:[T ]\s*(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?"
    r"(?:\s*(?P<ampm>AM|PM))?"
    r"(?:\s*(?P<z>Z|UTC|GMT|[+-]\d{2}:?\d{2}|[+-]\d{2}))?"
)
_LAYOUTS = (
    ("ymd", re.compile(rf"(?P<y>\d{{4}})-(?P<m>\d{{1,2}})(?:-(?P<d>\d{{1,2}}))?{_TIME}")),
    ("ymd", re.compile(rf"(?P<y>\d{{4}})[/.](?P<m>\d{{1,2}})[/.](?P<d>\d{{1,2}}){_TIME}")),
    (
        "mdy",
        re.compile(rf"(?P<m>\d{{1,2}})[/.-](?P<d>\d{{1,2}})[/.-](?P<y>\d{{4}}|\d{{2}}){_TIME}"),
    ),
    (
        "name",
        re.compile(rf"{_WEEKDAY}(?P<d>\d{{1,2}})[ -]{_MONTH}[ -](?P<y>\d{{4}}|\d{{2}}){_TIME}"),
    ),
    (
        "name",
        re.compile(
            rf"{_WEEKDAY}{_MONTH}[ -](?P<d>\d{{1,2}})(?:ST|ND|RD|TH)?\s+(?P<y>\d{{4}}){_TIME}"
        ),
    ),
    ("name", re.compile(rf"{_WEEKDAY}(?P<y>\d{{4}})-{_MONTH}-(?P<d>\d{{1,2}}){_TIME}")),
)
_ANSIC = re.compile(
    rf"{_WEEKDAY}{_MONTH}\s+(?P<d>\d{{1,2}})\s+(?P<h>\d{{1,2}}):(?P<mi>\d{{2}})"
    r"(?::(?P<s>\d{2}))?(?:\s+(?P<z>Z|UTC|GMT|[+-]\d{2}:?\d{2}))?\s+(?P<y>\d{4})"
)


def parse_date(value: str, zone: tzinfo = UTC) -> float | None:
    """Epoch seconds of a date or time as Mailpit's search reads it, or None; a value without
    a zone is in `zone`."""
    text = " ".join(value.upper().split())
    if not text or len(text) > DATE_LIMIT:
        return None
    if text.isdigit():
        return _digits(text, zone)
    for kind, layout in _LAYOUTS:
        match = layout.fullmatch(text)
        if match is not None:
            return _moment(match, kind, zone)
    match = _ANSIC.fullmatch(text)
    return None if match is None else _moment(match, "name", zone)


def _digits(text: str, zone: tzinfo) -> float | None:
    try:
        if len(text) == 10:
            return float(int(text))
        if len(text) == 13:
            return int(text) / 1000
        if len(text) in (8, 12, 14):
            year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
            hour, minute, second = (int(text[i : i + 2] or 0) for i in (8, 10, 12))
            return datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=zone).timestamp()
    except (ValueError, OverflowError):
        return None
    return None


def _moment(match: re.Match[str], kind: str, zone: tzinfo) -> float | None:
    groups = match.groupdict()
    try:
        month = _MONTHS[groups["mon"]] if kind == "name" else int(groups["m"])
        year = int(groups["y"])
        if len(groups["y"]) == 2:  # Go's two-digit years: 69-99 are 19xx, the rest 20xx
            year += 1900 if year >= 69 else 2000
        hour = int(groups["h"] or 0)
        if groups.get("ampm"):
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if groups["ampm"] == "PM" else 0)
        fraction = groups.get("f") or ""
        moment = datetime(
            year,
            month,
            int(groups["d"] or 1),
            hour,
            int(groups["mi"] or 0),
            int(groups["s"] or 0),
            int((fraction + "000000")[:6]),
            tzinfo=_zone(groups.get("z"), zone),
        )
    except (ValueError, OverflowError):
        return None
    return moment.timestamp()


def _zone(text: str | None, default: tzinfo) -> tzinfo:
    if text is None:
        return default
    if text in ("Z", "UTC", "GMT"):
        return UTC
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
