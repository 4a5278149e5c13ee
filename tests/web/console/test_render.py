"""The console's appearance in a real browser: dark with the system, the toggle's choice kept
across pages, and the same rules for a page whatever the theme."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import RelayThread, watched

pytestmark = pytest.mark.slow

DARK_BACKGROUND = "rgb(13, 17, 23)"
LIGHT_BACKGROUND = "rgb(255, 255, 255)"


def background(browser: Browser, url: str, scheme: str, cookie: str | None = None) -> str:
    context = browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    try:
        if cookie:
            context.add_cookies([{"name": "mxrelay_theme", "value": cookie, "url": url}])
        page = watched(context).page
        page.goto(url)
        return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))
    finally:
        context.close()


def test_dark_follows_the_system_unless_chosen(console: RelayThread, browser: Browser) -> None:
    assert background(browser, console.url, "light") == LIGHT_BACKGROUND
    assert background(browser, console.url, "dark") == DARK_BACKGROUND
    assert background(browser, console.url, "dark", cookie="light") == LIGHT_BACKGROUND
    assert background(browser, console.url, "light", cookie="dark") == DARK_BACKGROUND
    assert background(browser, console.url, "light", cookie="bogus") == LIGHT_BACKGROUND


def test_the_toggle_cycles_and_is_remembered(console: RelayThread, browser: Browser) -> None:
    context = browser.new_context(color_scheme="light")
    try:
        page = watched(context).page
        page.goto(console.url)
        toggle = page.locator("#theme-toggle")
        expect(toggle).to_have_attribute("aria-label", "Colour theme: auto")
        toggle.click()
        expect(toggle).to_have_attribute("aria-label", "Colour theme: dark")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == DARK_BACKGROUND
        page.goto(console.url + "queue")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        page.locator("#theme-toggle").click()
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        page.reload()
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
    finally:
        context.close()
