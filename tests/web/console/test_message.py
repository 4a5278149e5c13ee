"""One message in a real browser: every tab, the inline image, the attachment download, and the
delivery tabs of a held message."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import RelayThread, Watched

pytestmark = pytest.mark.slow

LOADED_WIDTH = "image => image.decode().then(() => image.naturalWidth)"
"""An image's width once it has loaded (`decode()` waits for it, and fails for an image that
cannot load): read at once, an image still arriving is incomplete and 0 wide."""


def open_rich(console: RelayThread, page: Watched) -> None:
    page.page.goto(console.url + "?q=quarterly")
    page.page.get_by_role("link", name="Quarterly report").click()
    expect(page.page.locator("h1")).to_have_text("Quarterly report")


def tab(page: Watched, name: str) -> None:
    page.page.locator("nav.tabs").get_by_role("link", name=name, exact=True).click()
    expect(page.page.locator("nav.tabs a[aria-current=page]")).to_have_text(name)


def test_every_tab(console: RelayThread, page: Watched) -> None:
    open_rich(console, page)
    panel = page.page.locator("#panel")
    frame = page.page.frame_locator("iframe.preview")
    expect(frame.locator("#greeting")).to_have_text("Figures inside")
    tab(page, "Text")
    expect(panel.locator("pre.text")).to_have_text("The figures are in the attachment.")
    tab(page, "Headers")
    expect(panel.locator("table.headers")).to_contain_text("X-Custom-Header")
    expect(panel.locator("table.headers")).to_contain_text("console")
    tab(page, "Source")
    expect(panel.locator("pre.source")).to_contain_text("Content-ID: <logo@example.org>")
    tab(page, "Attachments")
    expect(panel.locator("table.parts").first).to_contain_text("figures.csv")
    tab(page, "Recipients")
    expect(panel).to_contain_text("sam@example.net")
    expect(panel).to_contain_text("kim@example.net")
    expect(panel.locator(".badge.state-held")).to_have_count(2)
    expect(panel).to_contain_text("Refused in the same transaction")
    tab(page, "Delivery")
    expect(panel.locator(".timeline .received")).to_contain_text("received from 127.0.0.1")
    expect(panel.locator(".timeline .held")).to_contain_text("held")
    tab(page, "Session")
    expect(panel).to_contain_text("EHLO")
    expect(panel).to_contain_text("not authenticated")
    assert "tab=session" in page.page.url
    assert page.errors == []


def test_inline_image_and_attachment_download(console: RelayThread, page: Watched) -> None:
    open_rich(console, page)
    frame = page.page.frame_locator("iframe.preview")
    logo = frame.locator("#logo")
    expect(logo).to_be_visible()
    assert logo.evaluate(LOADED_WIDTH) == 2
    tab(page, "Attachments")
    inline = page.page.locator(".inline-images img")
    expect(inline).to_have_count(1)
    assert inline.evaluate(LOADED_WIDTH) == 2
    with page.page.expect_download() as started:
        page.page.get_by_role("link", name="figures.csv").click()
    download = started.value
    assert download.suggested_filename == "figures.csv"
    # The line break before the closing delimiter belongs to the delimiter (RFC 2046 5.1.1).
    assert Path(download.path()).read_bytes() == b"quarter,total\r\nQ3,42"


def test_an_unknown_message_is_a_page_not_found(console: RelayThread, page: Watched) -> None:
    response = page.page.goto(console.url + "message/01NOSUCHMESSAGE")
    assert response is not None
    assert response.status == 404
    expect(page.page.locator("h1")).to_have_text("Not found")
