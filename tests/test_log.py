"""Structured log lines: one per event, in text or JSON, never carrying a secret."""

from __future__ import annotations

import io
import json
import logging
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mxrelay import log
from tests.support.dns_server import DnsServer
from tests.support.processes import ServeProcess


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


FORGERY = "evil\r\n2026-01-01T00:00:00.000Z info mxrelay forged=1\tuser=admin\x00\x1b[2J\x7f\x9b1m"


def test_text_lines_escape_control_characters_so_fields_cannot_be_forged(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    log.configure("text", "info", stream)
    log.event(
        logger,
        "smtp.helo",
        helo=FORGERY,
        tab="a\tuser=admin",
        nbsp="a\u00a0user=admin",
        bidi="\u202eadmin",
        quote='a" user="admin',
        plain="client.example",
        rcpts=["x\x1b@example.org"],
        error=ValueError("bad reply: 550 no\x1b[8m"),
    )
    output = stream.getvalue()
    [line] = output.splitlines()
    assert [char for char in line if not char.isprintable()] == []
    assert ' helo="evil\\r\\n2026-01-01T00:00:00.000Z info mxrelay forged=1\\tuser=admin' in line
    assert '\\x00\\x1b[2J\\x7f\\x9b1m"' in line
    assert ' tab="a\\tuser=admin" nbsp="a\\xa0user=admin" bidi="\\u202eadmin"' in line
    assert ' quote="a\\" user=\\"admin" plain=client.example rcpts=["x\\u001b@example.org"]' in line
    assert line.endswith(' error="bad reply: 550 no\\x1b[8m"')


def test_an_exception_cannot_add_a_log_line(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    log.configure("text", "info", stream)
    try:
        raise ValueError(FORGERY)
    except ValueError:
        logger.exception("failed")
    first, *trace = stream.getvalue().splitlines()
    assert first.endswith(" error mxrelay.test failed")
    assert trace
    assert all(line.startswith("  ") for line in trace)
    assert all(char.isprintable() for line in trace for char in line)


def test_json_lines_escape_what_json_leaves_raw(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    log.configure("json", "info", stream)
    log.event(logger, "smtp.helo", helo=FORGERY + "\u202e\u2028\U000e0001", plain="é🙂")
    [line] = stream.getvalue().splitlines()
    assert [char for char in line if not char.isprintable()] == []
    fields = json.loads(line)
    assert fields["helo"] == FORGERY + "\u202e\u2028\U000e0001"
    assert '"plain":"é🙂"' in line  # printable text stays readable


@pytest.mark.slow
def test_a_running_relays_text_log_escapes_a_clients_helo(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    """Through `mxrelay serve`: a HELO name with ESC and TAB is one quoted, escaped field."""
    serve = ServeProcess(
        {
            "MXRELAY_DELIVERY": "hold",
            "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
            "MXRELAY_DNS_SERVERS": dns_server.address,
            "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
        },
        tmp_path / "relay.log",
    )
    try:
        with smtplib.SMTP("127.0.0.1", serve.smtp_port, timeout=30) as client:
            client.ehlo("app\x1b[2J\tuser=admin")
            client.sendmail("a@example.org", ["b@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
        assert serve.terminate() == 0
    finally:
        serve.close()
    text = serve.log
    assert "\x1b" not in text
    assert "\t" not in text
    [transaction] = [line for line in text.splitlines() if " transaction " in line]
    assert ' helo="app\\x1b[2J\\tuser=admin" ' in transaction
