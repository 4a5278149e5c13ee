"""The console at a phone's width: nothing wider than the screen, the list still readable."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import RelayThread, watched

pytestmark = pytest.mark.slow

PAGES = ("", "?q=invoice", "queue", "refusals", "summary")


@pytest.mark.parametrize("path", PAGES)
def test_no_page_is_wider_than_a_phone(console: RelayThread, browser: Browser, path: str) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = watched(context).page
        page.goto(console.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path or '/'} is {width} px wide"
        if not path:
            subject = page.locator("#messages tbody tr[data-id] .c-subject a").first
            expect(subject).to_be_visible()
            box = subject.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= 375
    finally:
        context.close()


def test_a_message_fits_a_phone(console: RelayThread, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = watched(context).page
        page.goto(console.url)
        page.locator("#messages tbody a").first.click()
        expect(page.locator("iframe.preview")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        context.close()
