"""Structured logging: one event name plus fields per line, as readable text or as JSON lines.

Stages log with `event(logger, "name", field=value, ...)`; the formatter chosen at start-up renders
the fields. Values that are secrets (pydantic `SecretStr`) and fields whose names say they hold a
secret are masked here, whatever the caller passed, so a slip elsewhere cannot leak a credential.
Message content is never a field.
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
        return json.dumps(payload, default=str, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`time level logger event key=value ...`, values quoted when they contain spaces."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        parts = [f"{stamp}Z", record.levelname.lower(), record.name, record.getMessage()]
        for key, value in _fields(record).items():
            parts.append(f"{key}={_text(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (not value or " " in value) else value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return str(value)


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
