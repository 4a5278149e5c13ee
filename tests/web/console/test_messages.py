"""The message list in a real browser: columns and badges, search kept in the URL with its help,
keyboard navigation, a new message appearing without a reload, and a burst of them costing a
few re-reads of the list."""

from __future__ import annotations

import asyncio
import re
import smtplib

import pytest
from playwright.sync_api import expect

from tests.support.browser import RelayThread, Watched
from tests.web.console.conftest import PLAIN

pytestmark = pytest.mark.slow


def test_the_list_shows_newest_first_with_badges(console: RelayThread, page: Watched) -> None:
    page.page.goto(console.url)
    rows = page.page.locator("#messages tbody tr[data-id]")
    expect(rows).to_have_count(2)
    newest = rows.nth(0)
    expect(newest.locator(".c-subject a")).to_have_text("Quarterly report")
    expect(newest.locator(".c-from")).to_have_text("reports@example.org")
    expect(newest.locator(".c-to")).to_have_text("sam@example.net")
    expect(newest.locator("svg.marker")).to_have_attribute("aria-label", "1 attachment")
    expect(newest.locator(".c-state .badge")).to_have_text("held")
    expect(rows.nth(1).locator(".c-subject a")).to_have_text("Invoice 42")
    expect(rows.nth(1).locator("svg.marker")).to_have_count(0)
    assert page.errors == []


def test_search_is_kept_in_the_url_and_explained(console: RelayThread, page: Watched) -> None:
    page.page.goto(console.url)
    page.page.keyboard.press("/")
    search = page.page.locator("#q")
    expect(search).to_be_focused()
    search.fill("invoice")
    search.press("Enter")
    expect(page.page).to_have_url(re.compile(r"\?q=invoice$"))
    rows = page.page.locator("#messages tbody tr[data-id]")
    expect(rows).to_have_count(1)
    expect(rows.locator(".c-subject a")).to_have_text("Invoice 42")
    expect(page.page.locator(".count")).to_have_text("1 message match")
    page.page.goto(console.url + "?q=addressed%3Akim%40example.net")  # a blind copy: Bcc, not To
    expect(rows).to_have_count(1)
    expect(rows.locator(".c-subject a")).to_have_text("Quarterly report")
    page.page.goto(console.url + "?q=nothing-like-this")
    expect(page.page.locator("#messages tbody")).to_contain_text("No message matches")
    help_box = page.page.locator("#search-help")
    expect(help_box).to_be_hidden()
    page.page.get_by_role("button", name="How to search").click()
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("status:failed")
    page.page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()


def test_keyboard_moves_opens_and_goes_back(console: RelayThread, page: Watched) -> None:
    page.page.goto(console.url + "?q=example")
    page.page.keyboard.press("j")
    current = page.page.locator("tr.is-current")
    expect(current.locator(".c-subject a")).to_have_text("Quarterly report")
    page.page.keyboard.press("j")
    expect(current.locator(".c-subject a")).to_have_text("Invoice 42")
    page.page.keyboard.press("k")
    page.page.keyboard.press("ArrowDown")
    expect(current.locator(".c-subject a")).to_have_text("Invoice 42")
    page.page.keyboard.press("Enter")
    expect(page.page.locator("h1")).to_have_text("Invoice 42")
    page.page.keyboard.press("Escape")
    expect(page.page).to_have_url(re.compile(r"/\?q=example$"))
    expect(page.page.locator("#q")).to_have_value("example")


def test_a_new_message_appears_without_a_reload(console: RelayThread, page: Watched) -> None:
    page.page.goto(console.url)
    rows = page.page.locator("#messages tbody tr[data-id]")
    before = rows.count()
    page.page.evaluate("window.notReloaded = true")
    console.send("billing@example.org", ["alex@example.net"], PLAIN.replace(b"42", b"43"))
    expect(rows).to_have_count(before + 1, timeout=20_000)
    expect(rows.nth(0).locator(".c-subject a")).to_have_text("Invoice 43")
    assert page.page.evaluate("window.notReloaded") is True
    expect(page.page.locator("#live")).to_have_attribute("data-state", re.compile("events|polling"))


def test_a_burst_of_mail_is_shown_with_few_re_reads(console: RelayThread, page: Watched) -> None:
    """Each new message is an event, but the page re-reads the list once, then once more when
    the burst is over, not once per message; the last message is shown all the same."""
    page.page.goto(console.url)
    expect(page.page.locator("#live")).to_have_attribute("data-state", "events")
    asked: list[str] = []
    page.page.on("request", lambda request: asked.append(request.url))

    def burst() -> None:
        with smtplib.SMTP("127.0.0.1", console.relay.smtp_port, timeout=30) as client:
            for n in range(30):
                data = PLAIN.replace(b"Invoice 42", f"Burst {n}".encode())
                client.sendmail("billing@example.org", ["alex@example.net"], data)

    console.call(lambda: asyncio.to_thread(burst))
    rows = page.page.locator("#messages tbody tr[data-id]")
    expect(rows.nth(0).locator(".c-subject a")).to_have_text("Burst 29", timeout=20_000)
    page.page.wait_for_timeout(3000)  # any re-read still due
    re_reads = [url for url in asked if "since=" in url]
    assert 1 <= len(re_reads) <= 4, re_reads
