"""Mailpit's npm client, mailpit-api, against a running mxrelay: `mailpit_api.mjs` makes every
call the client has (the current release, and its last release with the websocket helper, which
also checks the `/api/events` frames each call causes) and compares key sets exactly, as the
client's own end-to-end suite does against Mailpit. Each of the script's steps is a test here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import npm
from tests.support.api_relay import OPERATOR, api_relay

HERE = Path(__file__).resolve().parent
COMMON = [
    "getInfo",
    "getConfiguration",
    "sendMessage",
    "getMessageSummary",
    "getMessageHeaders",
    "getMessageSource",
    "getMessageAttachment",
    "getAttachmentThumbnail",
    "releaseMessage",
    "listMessages",
    "setReadStatus",
    "searchMessages",
    "waitForMessage",
    "setTags, renameTag, getTags, deleteTag",
    "renderMessageHTML, renderMessageText",
    "out of scope: html-check, link-check, sa-check, chaos",
    "deleteMessagesBySearch",
    "deleteMessages with IDs",
    "deleteMessages without IDs deletes every message",
    "wrong credentials: 401 Unauthorized",
]
STEPS = {
    "current": COMMON,
    "events": ["websocket connects with Basic auth", *COMMON, "onEvent('*') sees new and stats"],
}


def run_client(client: str) -> dict[str, Any]:
    node = npm.ensure_installed(HERE, "to run Mailpit's npm client")
    with api_relay(seed=False, users=True) as relay:
        env = {
            "PATH": os.environ["PATH"],
            "BASE_URL": relay.base_url,
            "MP_USERNAME": OPERATOR[0],
            "MP_PASSWORD": OPERATOR[1],
            "CLIENT": client,
            "RELEASE_TO": "released@example.net",
        }
        result = subprocess.run(
            [node, str(HERE / "mailpit_api.mjs")],
            env=env,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted([*found["passed"], *found["failed"]]) == sorted(STEPS[client])
    return found


@pytest.fixture(scope="module")
def current() -> dict[str, Any]:
    return run_client("current")


@pytest.fixture(scope="module")
def events() -> dict[str, Any]:
    return run_client("events")


@pytest.mark.parametrize("name", STEPS["current"])
def test_mailpit_api(current: dict[str, Any], name: str) -> None:
    assert name not in current["failed"], current["failed"].get(name)


@pytest.mark.parametrize("name", STEPS["events"])
def test_mailpit_api_with_events(events: dict[str, Any], name: str) -> None:
    assert name not in events["failed"], events["failed"].get(name)
