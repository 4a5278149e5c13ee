"""Every page of the console (the audit log with entries in it), light and dark, passes axe-core
without a serious or critical violation (contrast, names, roles, landmarks), checked in the browser
on the rendered page."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser

from tests.support.browser import RelayThread, watched
from tests.web.console.axe import serious_violations

pytestmark = pytest.mark.slow

PAGES = (
    "",
    "?q=invoice",
    "queue",
    "refusals",
    "refusals?check=alex@example.net",
    "summary",
    "audit",
    "audit?outcome=denied",
    "message/{id}?tab=html",
    "message/{id}?tab=text",
    "message/{id}?tab=headers",
    "message/{id}?tab=source",
    "message/{id}?tab=parts",
    "message/{id}?tab=recipients",
    "message/{id}?tab=timeline",
    "message/{id}?tab=session",
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_violations(console: RelayThread, browser: Browser, scheme: str) -> None:
    context = browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    try:
        page = watched(context).page
        page.goto(console.url + "?q=quarterly")
        newest = page.locator("#messages tbody tr[data-id]").first.get_attribute("data-id")
        # Entries for the audit page: an action that succeeds and one the API refuses.
        for body in (json.dumps({"IDs": [newest], "Read": True}), "{"):
            page.evaluate("body => fetch('api/v1/messages', {method: 'PUT', body: body})", body)
        found = {}
        for path in PAGES:
            page.goto(console.url + path.format(id=newest))
            page.wait_for_load_state("networkidle")
            violations = serious_violations(page)
            if violations:
                found[path] = violations
        assert found == {}
    finally:
        context.close()
