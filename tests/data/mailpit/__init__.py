"""Real MIME messages for the message view (what Mailpit shows of them is in the tests)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def corpus(name: str) -> bytes:
    """The bytes of `<name>.eml`."""
    return (HERE / f"{name}.eml").read_bytes()
