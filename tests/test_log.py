"""Structured log lines: one per event, in text or JSON, never carrying a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from mxrelay import log


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    logger = logging.getLogger("mxrelay")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield stream, logging.getLogger("mxrelay.test")
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_json_lines_carry_the_event_and_its_fields_without_secrets(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    log.configure("json", "info", stream)
    log.event(
        logger,
        "upstream.login",
        host="smtp.example.net",
        password="hunter2",
        client_secret=SecretStr("s3cret"),
        nested={"Authorization": "Bearer abc", "port": 587},
        empty_token="",
    )
    line = json.loads(stream.getvalue())
    assert line["event"] == "upstream.login"
    assert line["level"] == "info"
    assert line["logger"] == "mxrelay.test"
    assert line["host"] == "smtp.example.net"
    assert line["password"] == line["client_secret"] == log.MASK
    assert line["nested"] == {"Authorization": log.MASK, "port": 587}
    assert line["empty_token"] == ""  # nothing to hide: an empty secret shows as empty
    for secret in ("hunter2", "s3cret", "Bearer abc"):
        assert secret not in stream.getvalue()


def test_text_lines_quote_values_with_spaces_and_mask_secrets(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    log.configure("text", "info", stream)
    log.event(logger, "smtp.transaction", reply="250 2.0.0 Ok", rcpts=["a@example.org"],
              token="t0k3n")  # fmt: skip
    [line] = stream.getvalue().splitlines()
    assert line.endswith(
        ' info mxrelay.test smtp.transaction reply="250 2.0.0 Ok" rcpts=["a@example.org"] '
        f"token={log.MASK}"
    )


def test_events_below_the_level_are_not_written(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    log.configure("text", "warning", stream)
    log.event(logger, "quiet", logging.INFO, detail="x")
    log.event(logger, "loud", logging.WARNING, detail="y")
    assert [line.split(" ")[3] for line in stream.getvalue().splitlines()] == ["loud"]
