"""`mxrelay queue` and `mxrelay db` against a store (SQLite and PostgreSQL), as an operator runs them."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
from pathlib import Path

import pytest

from mxrelay.cli import main
from mxrelay.model import QueueState
from mxrelay.store.ingest import NewMessage
from mxrelay.store.open import OpenMode, open_store
from mxrelay.store.queue import Queue, Settlement
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from tests.store.helpers import T0, accept, record, transaction
from tests.support.processes import run_mxrelay
from tests.support.relay_app import running_relay

NOW = T0.timestamp() + 3600


def populate(url: str) -> list[str]:
    records = [
        record(transaction(mail_from="app@example.net", recipients=("a@example.org",))),
        record(transaction(mail_from="shop@example.com", recipients=("b@example.org",))),
    ]

    async def go() -> None:
        async with open_store(url) as db:
            await accept(db, *records)

    asyncio.run(go())
    return [r.id for r in records]


def states(url: str) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with open_store(url, OpenMode.QUEUE) as db:
            rows = await QueueAdmin(db).list_entries(QueueFilter(), now=NOW)
            return {row.entry.message_id: row.entry.state.value for row in rows}

    return asyncio.run(go())


def cli(url: str, *argv: str) -> int:
    return main(list(argv), {"MXRELAY_DATABASE_URL": url})


def test_list_show_and_act(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    app, shop = populate(database_url)
    assert cli(database_url, "queue", "list") == 0
    out = capsys.readouterr().out
    assert f"{app}.0" in out
    assert "app@example.net -> a@example.org" in out
    assert out.endswith("2 entries\n")

    assert cli(database_url, "queue", "list", "--sender", "shop@", "--json") == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == f"{shop}.0"

    assert cli(database_url, "queue", "hold", app) == 0
    assert capsys.readouterr().out == "1 entries: hold\n"
    assert states(database_url) == {app: "held", shop: "queued"}
    assert cli(database_url, "queue", "list", "--state", "held") == 0
    assert "held by an operator" in capsys.readouterr().out
    assert cli(database_url, "queue", "release", "--all", "--state", "held") == 0
    assert states(database_url) == {app: "queued", shop: "queued"}
    assert cli(database_url, "queue", "delete", f"{shop}.0") == 0
    assert states(database_url)[shop] == "dead"
    assert cli(database_url, "queue", "list", "--state", "failed") == 0  # "failed" = dead
    assert shop in capsys.readouterr().out
    assert cli(database_url, "queue", "retry", shop) == 0
    assert states(database_url)[shop] == "queued"

    assert cli(database_url, "queue", "show", app) == 0
    out = capsys.readouterr().out
    assert f"message     {app}" in out
    assert "a@example.org" in out
    assert cli(database_url, "queue", "show", app, "--json") == 0
    assert json.loads(capsys.readouterr().out)["recipients"][0]["address"] == "a@example.org"


def test_nothing_matched(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    populate(database_url)
    assert cli(database_url, "queue", "list", "--recipient", "nobody@") == 1
    assert cli(database_url, "queue", "hold") == 1  # no names and no --all: refuse to act on all
    assert "use --all" in capsys.readouterr().err
    assert cli(database_url, "queue", "show", "01NOSUCHMESSAGE000000000000") == 1


def test_db_upgrade_and_current(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    assert cli(url, "db", "current") == 0
    assert "revision none" in capsys.readouterr().out
    assert cli(url, "queue", "list") == 1
    assert "mxrelay db upgrade" in capsys.readouterr().err
    assert cli(url, "db", "upgrade") == 0
    assert cli(url, "db", "current") == 0
    assert "up to date" in capsys.readouterr().out


TERMINAL_ATTACK = "\x1b[2J\x1b]0;pwned\x07\r\tX\x00\x9b31m\u202e"
"""Clear the screen, retitle the window, return the cursor, a NUL, an 8-bit CSI, a bidi override."""


def encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def assert_no_raw_controls(text: str) -> None:
    raw = [char for char in text if not char.isprintable() and char != "\n"]
    assert raw == [], text


@pytest.mark.slow
def test_show_escapes_what_the_client_wrote(tmp_path: Path) -> None:
    """Subject, Message-ID and HELO name, received over SMTP, reach `mxrelay queue show` with
    their control characters escaped: nothing a terminal would act on is printed raw."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    message = (
        f"From: a@example.org\r\nTo: b@example.net\r\nSubject: {encoded_word(TERMINAL_ATTACK)}\r\n"
        "Message-ID: <\x1b[2J\tX@example.org>\r\n\r\nbody\r\n"
    )

    async def receive() -> None:
        env = {
            "MXRELAY_DELIVERY": "hold",
            "MXRELAY_DATABASE_URL": url,
            "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
        }
        async with running_relay(env) as relay:

            def send() -> None:
                with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
                    client.ehlo("app\x1b[31m\tx")
                    client.sendmail("a@example.org", ["b@example.net"], message.encode())

            await asyncio.to_thread(send)

    asyncio.run(receive())
    listed = run_mxrelay("queue", "list", env={"MXRELAY_DATABASE_URL": url})
    assert listed.returncode == 0, listed.stderr
    message_id = listed.stdout.split(".", 1)[0]
    shown = run_mxrelay("queue", "show", message_id, env={"MXRELAY_DATABASE_URL": url})
    assert shown.returncode == 0, shown.stderr
    assert_no_raw_controls(shown.stdout)
    assert "helo app\\x1b[31m\\tx\n" in shown.stdout
    # The NUL was stored as U+FFFD (no database takes it); the rest is escaped on the way out.
    assert "subject     \\x1b[2J\\x1b]0;pwned\\x07 X\ufffd\\x9b31m\\u202e\n" in shown.stdout
    assert "message-id  \\x1b[2J X@example.org\n" in shown.stdout


def test_list_escapes_stored_addresses_and_errors(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An envelope sender and a last error holding control characters (a stored row, as an older
    relay accepted such senders, and as upstream replies carry any text) are listed escaped."""
    new = record(transaction(mail_from="x\x1b[2J\x07@example.org"))
    asyncio.run(_accept_and_defer(database_url, new, "451 4.3.0 busy\r\x1b[8mhidden"))
    assert cli(database_url, "queue", "list") == 0
    out = capsys.readouterr().out
    assert_no_raw_controls(out)
    assert f"{new.id}.0" in out
    assert "x\\x1b[2J\\x07@example.org -> bob@example.org" in out
    assert "451 4.3.0 busy\\r\\x1b[8mhidden" in out


async def _accept_and_defer(url: str, new: NewMessage, error: str) -> None:
    async with open_store(url) as db:
        await accept(db, new)
        queue = Queue(db)
        [entry] = await queue.claim("test", 1, NOW, 60)
        deferred = Settlement(
            entry=entry,
            owner="test",
            state=QueueState.DEFERRED,
            next_attempt_at=NOW + 600,
            attempts=1,
            now=NOW,
            last_error=error,
        )
        await db.write(queue.settle_batch, [deferred])
