"""The configuration-fault banner in a real browser: with the Graph stand-in refusing the
relay's credentials, every page says so, and the open page shows it without a reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import RelayThread, Watched
from tests.support.graph_harness import message, relay_environ
from tests.support.graph_standin import GraphStandIn
from tests.support.graph_standin_mail import MAILBOX

pytestmark = pytest.mark.slow


def test_a_refused_token_shows_on_every_page(
    tmp_path: Path, standin: GraphStandIn, page: Watched
) -> None:
    env = relay_environ(
        standin,
        MXRELAY_GRAPH_CLIENT_SECRET="Wr0ng~SecretValue.123",
        MXRELAY_DATABASE_URL=f"sqlite:///{tmp_path / 'log.db'}",
        MXRELAY_DNS_TRUSTED_DOMAINS="example.net",
    )
    with RelayThread(env) as relay:
        page.page.goto(relay.url + "queue")
        banner = page.page.locator(".banner.error")
        expect(banner).to_have_count(0)
        relay.send(MAILBOX, ["alice@example.net"], message())
        # The open page learns of it by itself.
        expect(banner.first).to_be_visible(timeout=30_000)
        expect(banner.first).to_contain_text("AADSTS7000215")
        for path in ("", "refusals", "summary", "queue"):
            page.page.goto(relay.url + path)
            expect(page.page.locator("#banner")).to_contain_text(
                "Microsoft Graph refuses the relay's credentials or permissions"
            )
            expect(page.page.locator("#banner")).to_contain_text("the client secret is wrong")
        expect(page.page.locator("#queue .count-card.state-held .n")).to_have_text("1")
