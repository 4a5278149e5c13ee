"""Parsing bombs against `mxrelay serve`: each hostile message gets its `250` and its message view,
while /healthz keeps answering, an ordinary transaction beside it gets its `250`, and the relay's
peak memory grows by less than `RSS_GROWTH_BOUND`. Broken MIME is stored and given back byte for
byte."""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiosmtplib
import httpx
import pytest

from tests.support.hostile import BOMBS, hold_relay, watch
from tests.support.processes import ServeProcess

pytestmark = pytest.mark.slow
QUEUED_AS = re.compile(r"queued as (\w+)")


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, int]]:
    with hold_relay(tmp_path_factory.mktemp("hostile")) as running:
        yield running


async def send(port: int, data: bytes) -> str:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as client:
        try:
            _, reply = await client.sendmail("app@example.net", ["user@example.org"], data)
        except aiosmtplib.SMTPResponseException as exc:
            return f"{exc.code} {exc.message}"
    return f"250 {reply}"


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=120) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


@pytest.mark.parametrize("bomb", list(BOMBS))
async def test_a_hostile_message_is_accepted_and_shown_with_bounded_work(
    relay: tuple[ServeProcess, int], bomb: str
) -> None:
    process, web_port = relay
    data = BOMBS[bomb]
    accepted = await watch(send(process.smtp_port, data), process)
    reply = str(accepted.result)
    assert reply.startswith("250 "), reply  # broken MIME passes unchanged, never a 451
    found = QUEUED_AS.search(reply)
    assert found is not None
    message_id = found.group(1)

    shown = await watch(get(web_port, f"/api/v1/message/{message_id}"), process)
    view = shown.result
    assert isinstance(view, httpx.Response)
    assert view.status_code == 200, view.text[:500]  # never a 500
    assert view.json()["ID"] == message_id
    latest = await get(web_port, "/api/v1/message/latest")
    assert latest.status_code == 200
    raw = await get(web_port, f"/api/v1/message/{message_id}/raw")
    assert raw.content == data  # stored and given back as bytes
