"""What the console's reads share: the bound on a page and forgiving JSON readers."""

from __future__ import annotations

import json
from typing import Any

PAGE_LIMIT = 200
"""Rows one page of a list may ask for."""


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def json_strings(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [str(item) for item in value] if isinstance(value, list) else []
