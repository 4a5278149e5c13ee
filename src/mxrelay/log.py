"""Structured logging: one event name plus fields per line, as readable text or as JSON lines.

Stages log with `event(logger, "name", field=value, ...)`; the formatter chosen at start-up renders
the fields. Values that are secrets (pydantic `SecretStr`) and fields whose names say they hold a
secret are masked here, whatever the caller passed, so a slip elsewhere cannot leak a credential.
Message content is never a field. Field values often carry what a client wrote (HELO names,
addresses, replies), so no control character reaches a line raw: text lines escape them and quote
any value that could be read as more than one field, and JSON lines escape the ones JSON allows raw
(DEL, C1, bidirectional overrides), so neither a terminal nor a log reader can be fooled.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import SecretStr

FIELDS_ATTR = "mxrelay_fields"
_SECRET_NAMES = ("password", "secret", "token", "authorization", "assertion", "credential")
MASK = "********"


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log event `name` with `fields` (skipped cheaply when the level is disabled)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={FIELDS_ATTR: fields})


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _redact_value(key, value) for key, value in fields.items()}


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr) or any(name in key.lower() for name in _SECRET_NAMES):
        return MASK if value not in (None, "") else value
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redact_value("", item) for item in value]
    return value


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS_ATTR, None)
    return redact(fields) if isinstance(fields, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update(_fields(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return _json(payload)


class TextFormatter(logging.Formatter):
    """`time level logger event key=value ...`, values quoted when they contain spaces."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        parts = [f"{stamp}Z", record.levelname.lower(), record.name, printable(record.getMessage())]
        for key, value in _fields(record).items():
            parts.append(f"{printable(key)}={_text(value)}")
        line = " ".join(parts)
        if record.exc_info:
            # Indented, so no line of an exception's message can pass for a log line.
            for trace_line in self.formatException(record.exc_info).splitlines():
                line += "\n  " + printable(trace_line)
        return line


def printable(text: str) -> str:
    """`text` with every character a terminal could act on (C0, DEL, C1, bidirectional controls,
    line and paragraph separators, other non-printables) written as a Python escape, `\\x1b`.

    Hand-written because `repr()` adds quotes and escapes quotes, and `json.dumps` leaves DEL, C1
    and bidirectional controls raw. Used for log lines and for what the commands print.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BARE_FORBIDDEN = frozenset('"=\\')


def _text(value: Any) -> str:
    """A field value: bare when it is one printable word, else quoted with escapes (logfmt)."""
    if isinstance(value, list | tuple | dict):
        return _json(value)
    text = value if isinstance(value, str) else str(value)
    if text and text.isprintable() and " " not in text and _BARE_FORBIDDEN.isdisjoint(text):
        return text
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{printable(quoted)}"'


def _json(value: Any) -> str:
    """Compact JSON; characters JSON allows raw but a terminal acts on are escaped as `\\uXXXX`."""
    text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _json_escape(char) for char in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, the only JSON escape beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def configure(fmt: str, level: str, stream: TextIO | None = None) -> None:
    """Install one handler on the `mxrelay` logger (the process's only logging set-up)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger("mxrelay")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
