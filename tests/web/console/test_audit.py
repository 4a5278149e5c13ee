"""The audit log page in a real browser, on a relay with an operator and a viewer: what the
operator does from the console is on the page, the viewer reads the same page (a read needs a
viewer), sees no action control, and a viewer's attempt to act is refused and recorded too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.api_relay import OPERATOR, VIEWER, users_env
from tests.support.browser import RelayThread, logged_in
from tests.web.console.conftest import PLAIN, hold_env

pytestmark = pytest.mark.slow


def test_an_operators_action_is_on_the_audit_page_and_a_viewer_reads_it(
    tmp_path: Path, browser: Browser
) -> None:
    with RelayThread(hold_env(tmp_path, **users_env(tmp_path))) as relay:
        relay.send("billing@example.org", ["alex@example.net"], PLAIN)
        operator = logged_in(browser, OPERATOR).page
        viewer = logged_in(browser, VIEWER).page
        try:
            operator.goto(relay.url)
            row = operator.locator("#messages tbody tr[data-id]").first
            ident = row.get_attribute("data-id")
            assert ident
            row.locator("input[name=ids]").check()
            bar = operator.get_by_role("toolbar", name="Actions on the selected messages")
            bar.get_by_role("button", name="Tag…").click()
            operator.locator("#confirm-input").fill("audited")
            operator.locator("#confirm-dialog").get_by_role("button", name="Confirm").click()
            expect(bar.locator(".action-status")).to_have_text("Tag…: done.")

            nav = operator.get_by_role("navigation", name="Sections")
            nav.get_by_role("link", name="Audit").click()
            expect(operator).to_have_url(re.compile(r"/audit$"))
            expect(nav.get_by_role("link", name="Audit")).to_have_attribute("aria-current", "page")
            entries = operator.locator("table.audit tbody tr[data-audit]")
            expect(entries).to_have_count(1)
            tagged = entries.first
            expect(tagged.locator(".c-actor")).to_have_text("operator")
            expect(tagged.locator(".c-client")).to_have_text("127.0.0.1")
            expect(tagged.locator(".c-action")).to_have_text("tag")
            expect(tagged.locator(".c-target")).to_have_text(ident)
            expect(tagged.locator(".c-count")).to_have_text("1")
            expect(tagged.locator(".c-outcome")).to_have_text("ok")

            # A viewer reads the same log, and is shown no action.
            viewer.goto(relay.url)
            expect(viewer.locator("#messages tbody tr[data-id]")).to_have_count(1)
            expect(viewer.locator("button[data-action]")).to_have_count(0)
            viewer.get_by_role("navigation", name="Sections").get_by_role(
                "link", name="Audit"
            ).click()
            seen = viewer.locator("table.audit tbody tr[data-audit]")
            expect(seen).to_have_count(1)
            expect(seen.first.locator(".c-actor")).to_have_text("operator")
            # The API refuses a viewer's action and the log keeps the attempt.
            status = viewer.evaluate(
                """ident => fetch('api/v1/messages', {method: 'PUT',
                    headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({IDs: [ident], Read: true})}).then(r => r.status)""",
                ident,
            )
            assert status == 403
            viewer.reload()
            expect(seen).to_have_count(2)
            denied = seen.first
            expect(denied.locator(".c-actor")).to_have_text("viewer")
            expect(denied.locator(".c-action")).to_have_text("PUT /api/v1/messages")
            expect(denied.locator(".c-outcome")).to_have_text("denied")

            # Each actor links to its own entries; the filter is kept in the URL.
            seen.nth(1).locator(".c-actor a").click()
            expect(viewer).to_have_url(re.compile(r"/audit\?actor=operator$"))
            expect(seen).to_have_count(1)
            expect(viewer.locator("#audit-actor")).to_have_value("operator")
            viewer.locator("#audit-outcome").select_option("denied")
            viewer.get_by_role("button", name="Filter").click()
            expect(viewer.locator("table.audit tbody")).to_contain_text("No entry matches")
            viewer.get_by_role("link", name="Clear").click()
            expect(seen).to_have_count(2)
        finally:
            operator.context.close()
            viewer.context.close()
