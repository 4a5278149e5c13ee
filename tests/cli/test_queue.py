"""`mxrelay queue` and `mxrelay db` against a store (SQLite and PostgreSQL), as an operator runs them."""

from __future__ import annotations

import asyncio
import json

import pytest

from mxrelay.cli import main
from mxrelay.store.db import open_store
from mxrelay.store.queue import Queue, QueueFilter
from tests.store.helpers import T0, accept, record, transaction

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
        async with open_store(url, migrate=False) as db:
            rows = await Queue(db).list_entries(QueueFilter(), now=NOW)
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
