"""Opening a message marks it read, as in Mailpit's UI: the list shows it unread, then read once
opened and left, the API's list says so, another tab showing the list is told by the event
socket and redraws it without a reload, and a client of the event socket gets Mailpit's `update`
frame."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, WebSocket, expect

from tests.support.browser import RelayThread, Watched, watched
from tests.web.console.conftest import PLAIN

pytestmark = pytest.mark.slow

READ = re.compile(r"(^|\s)read(\s|$)")
UNREAD = re.compile(r"(^|\s)unread(\s|$)")


def test_opening_a_message_marks_it_read(console: RelayThread, page: Watched) -> None:
    page.page.goto(console.url)
    rows = page.page.locator("#messages tbody tr[data-id]")
    invoice = rows.filter(has_text="Invoice 42")
    expect(invoice).to_have_class(UNREAD)
    expect(invoice.locator(".unread-mark")).to_have_text("Unread:")
    ident = invoice.get_attribute("data-id")
    invoice.locator(".c-subject a").click()
    expect(page.page.locator("h1")).to_have_text("Invoice 42")
    # Another tab of the message (a fragment of the page) does not mark it again.
    page.page.locator("nav.tabs").get_by_role("link", name="Headers").click()
    page.page.locator("[data-back]").click()
    expect(invoice).to_have_class(READ)
    expect(invoice.locator(".unread-mark")).to_have_count(0)
    listed = page.page.request.get(console.url + "api/v1/messages").json()
    assert {m["ID"]: m["Read"] for m in listed["messages"]}[ident] is True
    # The browser's own Back shows it too.
    report = rows.filter(has_text="Quarterly report")
    expect(report).to_have_class(UNREAD)
    report.locator(".c-subject a").click()
    expect(page.page.locator("h1")).to_have_text("Quarterly report")
    page.page.go_back()
    expect(report).to_have_class(READ)
    assert page.errors == []


def test_another_tab_sees_it_read_live(console: RelayThread, browser: Browser) -> None:
    console.send("billing@example.org", ["alex@example.net"], PLAIN.replace(b"42", b"77"))
    context = browser.new_context()
    try:
        listing = watched(context).page
        frames: list[dict[str, Any]] = []

        def record(socket: WebSocket) -> None:
            socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))

        listing.on("websocket", record)
        listing.goto(console.url)
        expect(listing.locator("#live")).to_have_attribute("data-state", "events")
        listing.evaluate("window.notReloaded = true")
        # Beside the page's own (brief) subscription, a client of Mailpit's frames.
        listing.evaluate(
            """() => new Promise(opened => {
                const socket = new WebSocket(location.href.replace(/^http/, "ws") + "api/events");
                socket.onopen = opened;
            })"""
        )
        row = listing.locator("#messages tbody tr[data-id]").filter(has_text="Invoice 77")
        expect(row).to_have_class(UNREAD)
        ident = row.get_attribute("data-id")

        reader = watched(context).page
        reader.goto(console.url + f"message/{ident}")
        expect(reader.locator("h1")).to_have_text("Invoice 77")

        expect(row).to_have_class(READ, timeout=15_000)
        expect(row.locator(".unread-mark")).to_have_count(0)
        assert listing.evaluate("window.notReloaded") is True
        mailpits = {"Type": "update", "Data": {"ID": ident, "Read": True}}
        for _ in range(100):  # the frames reach this side in their own time
            if mailpits in frames:
                break
            listing.wait_for_timeout(100)
        assert mailpits in frames
        assert {"Type": "update", "Data": None} in frames  # the page's own: the kind, no data
    finally:
        context.close()
