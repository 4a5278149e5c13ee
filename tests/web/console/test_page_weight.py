"""The first page a browser loads is small: everything it transfers (the page, the style sheet,
the scripts, the icon; headers included) stays under 100 KB, with a full page of messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Request, expect

from tests.support.browser import RelayThread, watched
from tests.web.console.conftest import hold_env, rich

pytestmark = pytest.mark.slow

BUDGET = 100 * 1000


def test_the_first_page_is_under_100_kb(tmp_path: Path, browser: Browser) -> None:
    with RelayThread(hold_env(tmp_path)) as relay:
        for n in range(55):
            relay.send("reports@example.org", ["sam@example.net"], rich(f"Report number {n}"))
        context = browser.new_context()
        try:
            page = watched(context).page
            finished: list[Request] = []
            page.on("requestfinished", lambda request: finished.append(request))
            page.goto(relay.url)
            expect(page.locator("#messages tbody tr[data-id]")).to_have_count(50)
            page.wait_for_load_state("networkidle")
            total = 0
            for request in finished:
                sizes = request.sizes()
                total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
                total += sizes["requestHeadersSize"]
            names = sorted(r.url.rsplit("/", 1)[-1].split("?v=")[0] for r in finished)
            # The page (the log's count in it), the style sheet, the scripts, the icon.
            assert names == [
                "",
                "console.css",
                "console.js",
                "favicon.svg",
                "htmx-2.0.11.min.js",
            ]
            assert total < BUDGET, f"the first page transferred {total} bytes"
        finally:
            context.close()
