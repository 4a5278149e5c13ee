"""Operator actions in a real browser: shown to operators only, confirmed first, never sent
without an ID, and sent as the message-log API's calls (recorded here by a stand-in route in
place of the API's own, with the console served over the same store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mxrelay.config import HostPort
from mxrelay.health import Health
from mxrelay.web.console import console_routes
from mxrelay.web.server import HttpLimits, HttpServer
from tests.support.browser import RelayThread, Watched

pytestmark = pytest.mark.slow


@pytest.fixture
def operator_console(console: RelayThread) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The console over `console`'s store with every request an operator's, and API routes that
    record what they are sent."""
    calls: list[dict[str, Any]] = []

    async def record(request: Request) -> Response:
        calls.append(
            {
                "method": request.method,
                "path": request.url.path,
                "body": json.loads(await request.body()),
            }
        )
        return PlainTextResponse("ok")

    api = [
        Route(path, record, methods=["PUT", "POST", "DELETE"])
        for path in (
            "/api/v1/messages",
            "/api/v1/tags",
            "/api/v1/message/{id}/release",
            "/api/v1/mxrelay/messages/{action}",
        )
    ]
    app = Starlette(
        routes=[*console_routes(console.database, Health(), operator=lambda request: True), *api]
    )
    server = HttpServer(app, HostPort("127.0.0.1", 0), HttpLimits(10, 10.0))
    console.call(server.start)
    try:
        yield f"http://127.0.0.1:{server.port}/", calls
    finally:
        console.call(server.stop)


@pytest.fixture
def viewer_console(console: RelayThread) -> Iterator[str]:
    """The console over `console`'s store with every request a viewer's."""
    app = Starlette(routes=console_routes(console.database, Health(), operator=lambda r: False))
    server = HttpServer(app, HostPort("127.0.0.1", 0), HttpLimits(10, 10.0))
    console.call(server.start)
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        console.call(server.stop)


def test_viewers_see_no_action(viewer_console: str, page: Watched) -> None:
    page.page.goto(viewer_console)
    expect(page.page.locator("button[data-action]")).to_have_count(0)
    expect(page.page.locator("input[name=ids]")).to_have_count(0)


def test_an_operator_confirms_and_the_api_call_goes_out(
    operator_console: tuple[str, list[dict[str, Any]]], page: Watched
) -> None:
    url, calls = operator_console
    page.page.goto(url)
    bar = page.page.get_by_role("toolbar", name="Actions on the selected messages")
    bar.get_by_role("button", name="Delete").click()
    expect(bar.locator(".action-status")).to_have_text("Select one or more messages first.")
    assert calls == []
    rows = page.page.locator("#messages tbody tr[data-id]")
    first = rows.nth(0).get_attribute("data-id")
    rows.nth(0).locator("input[name=ids]").check()
    bar.get_by_role("button", name="Delete").click()
    dialog = page.page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("Delete 1 message from the log?")
    dialog.get_by_role("button", name="Cancel").click()
    assert calls == []
    bar.get_by_role("button", name="Mark read").click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(bar.locator(".action-status")).to_have_text("Mark read: done.")
    assert calls == [
        {"method": "PUT", "path": "/api/v1/messages", "body": {"IDs": [first], "Read": True}}
    ]
    page.page.locator("input[data-select-all]").check()
    bar.get_by_role("button", name="Tag…").click()
    page.page.locator("#confirm-input").fill("urgent, billing")
    dialog.get_by_role("button", name="Confirm").click()
    expect(bar.locator(".action-status")).to_have_text("Tag…: done.")
    assert calls[-1]["path"] == "/api/v1/tags"
    assert calls[-1]["body"]["Tags"] == ["urgent", "billing"]
    assert len(calls[-1]["body"]["IDs"]) == rows.count()
    # One message: its own bar, release included.
    rows.nth(0).locator(".c-subject a").click()
    own = page.page.get_by_role("toolbar", name="Actions on this message")
    own.get_by_role("button", name="Release a copy…").click()
    page.page.locator("#confirm-input").fill("audit@example.net")
    dialog.get_by_role("button", name="Confirm").click()
    expect(own.locator(".action-status")).to_have_text("Release a copy…: done.")
    assert calls[-1] == {
        "method": "POST",
        "path": f"/api/v1/message/{first}/release",
        "body": {"To": ["audit@example.net"]},
    }
    own.get_by_role("button", name="Retry now").click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(own.locator(".action-status")).to_have_text("Retry now: done.")
    assert calls[-1] == {
        "method": "POST",
        "path": "/api/v1/mxrelay/messages/retry",
        "body": {"IDs": [first]},
    }
