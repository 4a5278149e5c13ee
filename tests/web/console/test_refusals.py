"""The refused recipients in a real browser: a recipient refused at RCPT appears in the log with
its reply, reason and stage, is counted for its domain, and can be checked again."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import RelayThread, Watched
from tests.web.console.conftest import PLAIN, hold_env

pytestmark = pytest.mark.slow


def test_a_refused_rcpt_is_logged_counted_and_checked(tmp_path: Path, page: Watched) -> None:
    with RelayThread(hold_env(tmp_path)) as relay:
        page.page.goto(relay.url + "refusals")
        expect(page.page.locator("#refusal-log")).to_contain_text("No refused recipient")

        def send() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", relay.relay.smtp_port, timeout=30) as client:
                return client.sendmail(
                    "billing@example.org", ["nobody@nowhere.invalid", "alex@example.net"], PLAIN
                )

        refused = send()
        assert refused["nobody@nowhere.invalid"][0] == 550
        # The log refreshes in place.
        row = page.page.locator("#refusal-log tr[data-recipient]")
        expect(row).to_have_count(1, timeout=20_000)
        expect(row).to_contain_text("nobody@nowhere.invalid")
        expect(row).to_contain_text("550")
        expect(row.locator(".badge.reason")).to_have_text("special_use")
        expect(row).to_contain_text("special-use name or address, before DNS")
        page.page.reload()
        expect(page.page.locator("table.domains")).to_contain_text("nowhere.invalid")
        page.page.get_by_role("link", name="Check nobody@nowhere.invalid again").click()
        verdict = page.page.locator("[data-verdict]")
        expect(verdict).to_contain_text("550 5.1.2")
        expect(verdict).to_contain_text("reason: special_use")
        page.page.locator("#check").fill("alex@example.net")
        page.page.locator("#check").press("Enter")
        expect(verdict).to_contain_text("250")
        expect(verdict).to_contain_text("trusted domain")
        # The message page lists the refusal of its own transaction.
        page.page.goto(relay.url)
        page.page.get_by_role("link", name="Invoice 42").click()
        page.page.locator("nav.tabs").get_by_role("link", name="Recipients").click()
        expect(page.page.locator("table.refused")).to_contain_text("nobody@nowhere.invalid")
