"""The console behind a path prefix (MXRELAY_UI_WEBROOT): pages, links, assets and the API live
under it, the probes answer at the root too, and nothing is served outside it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import RelayThread, Watched
from tests.web.console.conftest import PLAIN, hold_env

pytestmark = pytest.mark.slow


def test_everything_lives_under_the_prefix(tmp_path: Path, page: Watched) -> None:
    with RelayThread(hold_env(tmp_path, MXRELAY_UI_WEBROOT="mail")) as relay:
        relay.send("billing@example.org", ["alex@example.net"], PLAIN)
        assert relay.url.endswith(f":{relay.relay.web_port}/mail/")
        page.page.goto(relay.url)
        expect(page.page.locator("#messages tbody tr[data-id]")).to_have_count(1)
        # The style sheet and the scripts came from under the prefix and work.
        assert page.page.evaluate("typeof window.htmx") == "object"
        assert (
            page.page.evaluate("getComputedStyle(document.querySelector('.top')).display") == "flex"
        )
        page.page.get_by_role("link", name="Invoice 42").click()
        expect(page.page.locator("h1")).to_have_text("Invoice 42")
        assert "/mail/message/" in page.page.url
        page.page.locator("nav.tabs").get_by_role("link", name="Text").click()
        expect(page.page.locator("pre.text")).to_contain_text("Your invoice is attached.")
        page.page.locator("nav[aria-label=Sections]").get_by_role("link", name="Queue").click()
        expect(page.page).to_have_url(relay.url + "queue")
        outside = [u for u in page.urls() if not u.startswith(relay.url) and u.startswith("http")]
        assert outside == []
        base = f"http://127.0.0.1:{relay.relay.web_port}"
        with httpx.Client(base_url=base) as client:
            assert client.get("/mail/api/v1/messages").json()["total"] == 1
            assert client.get("/readyz").status_code == 200
            assert client.get("/mail/readyz").status_code == 200
            assert client.get("/").status_code == 404
            assert client.get("/api/v1/messages").status_code == 404
            assert (
                client.get("/mail", follow_redirects=False).headers["location"].endswith("/mail/")
            )
