"""A hostile message in a real browser runs nothing and loads nothing, checked from the page:
dialogs, page errors and every request of the page and its frames are recorded, and the
"remote" server the message points at (on 127.0.0.1) counts its hits. Remote images come only
when the operator asks, and then only images. The frame shows the API's `/view/{ID}.html`."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Dialog, expect

from tests.support.browser import RelayThread, Watched
from tests.web.console.conftest import Recorder, hold_env, hostile

pytestmark = pytest.mark.slow


def test_a_hostile_message_runs_nothing_and_loads_nothing(
    tmp_path: Path, page: Watched, recorder: Recorder
) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.page.on("dialog", dismiss)
    with RelayThread(hold_env(tmp_path)) as relay:
        relay.send("mallory@example.org", ["victim@example.net"], hostile(recorder.url))
        page.page.goto(relay.url)
        expect(page.page.locator("#messages tbody tr[data-id]")).to_have_count(1)
        page.page.locator("#messages tbody a").first.click()
        frame = page.page.frame_locator("iframe.preview")
        expect(frame.locator("#bait")).to_have_text("Hello")
        # The subject is text, the page's title was not touched by the message's script.
        expect(page.page.locator("h1")).to_have_text("<script>alert('subject')</script> hostile")
        assert page.page.title().endswith("· mxrelay")
        page.page.wait_for_load_state("networkidle")
        preview = next(f for f in page.page.frames if ".html?embed=1" in f.url)
        assert "/view/" in preview.url
        assert preview.evaluate("1 + 1") == 2  # the frame exists; its own scripts never ran
        assert dialogs == []
        assert page.errors == []
        assert recorder.hits == []
        # The browser saw what the message asked for and refused it by the frame's policy.
        asked = [url for url in page.urls() if url.startswith(recorder.url)]
        assert asked
        assert not [url for url in page.answered if url.startswith(recorder.url)]
        assert {page.failed.get(url) for url in asked} == {"csp"}
        frame_messages = [m.text for m in page.console if "alert" in m.text or "owned" in m.text]
        assert frame_messages == []
        # Still nothing after a while: the refresh that would have navigated the frame is gone.
        page.page.wait_for_timeout(1500)
        assert recorder.hits == []
        assert preview.url.endswith(".html?embed=1")

        page.page.get_by_role("link", name="Load remote images").click()
        frame = page.page.frame_locator("iframe.preview")
        expect(frame.locator("#remote")).to_be_visible()
        page.page.wait_for_load_state("networkidle")
        # Images only: no style sheet, no script, no frame, no refresh, and still no dialog.
        assert set(recorder.hits) <= {"/pixel.png", "/bg.png"}
        assert "/pixel.png" in recorder.hits
        assert dialogs == []
        assert page.errors == []


def test_the_preview_opened_on_its_own_is_inert(
    tmp_path: Path, page: Watched, recorder: Recorder
) -> None:
    """Opened as a top-level page (a link someone was sent), the preview is still sandboxed by
    its policy: an opaque origin that runs nothing."""
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.page.on("dialog", dismiss)
    with RelayThread(hold_env(tmp_path)) as relay:
        relay.send("mallory@example.org", ["victim@example.net"], hostile(recorder.url))
        page.page.goto(relay.url)
        ident = page.page.locator("#messages tbody tr[data-id]").first.get_attribute("data-id")
        page.page.goto(relay.url + f"view/{ident}.html?embed=1")
        expect(page.page.locator("#bait")).to_have_text("Hello")
        page.page.wait_for_load_state("networkidle")
        assert page.page.evaluate("window.origin") == "null"
        assert page.page.locator("meta[http-equiv]").count() == 0  # the refresh is gone
        assert dialogs == []
        assert recorder.hits == []
        # With remote images asked for: images come, and still nothing runs or loads.
        page.page.goto(relay.url + f"view/{ident}.html?embed=1&remote=1")
        expect(page.page.locator("#remote")).to_be_visible()
        page.page.wait_for_load_state("networkidle")
        assert page.page.evaluate("window.origin") == "null"
        assert dialogs == []
        assert "/pixel.png" in recorder.hits
        assert set(recorder.hits) <= {"/pixel.png", "/bg.png"}


def test_a_refresh_hidden_in_a_quoted_value_never_reaches_the_browser(
    tmp_path: Path, page: Watched, recorder: Recorder
) -> None:
    """`<meta content="0;url=…>" http-equiv=refresh>`: a `>` in a quoted value, where a pattern
    stops. The page stays where it is, and Chromium holds no meta with `http-equiv` and never
    had a refresh to refuse (it refuses one in a sandboxed page, which the preview is: the
    removal does not lean on that)."""
    html = (
        f'<html><head><meta content="0;url={recorder.url}/refresh>" http-equiv=refresh>'
        '<meta charset="utf-8"></head><body><p id="bait">Hello</p></body></html>'
    )
    message = (
        b"From: Mallory <mallory@example.org>\r\nTo: <victim@example.net>\r\n"
        b"Subject: Refresh\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    )
    with RelayThread(hold_env(tmp_path)) as relay:
        relay.send("mallory@example.org", ["victim@example.net"], message)
        listing = page.page.request.get(relay.url + "api/v1/messages").json()
        ident = listing["messages"][0]["ID"]
        for query in ("", "?embed=1"):
            url = relay.url + f"view/{ident}.html{query}"
            page.page.goto(url)
            expect(page.page.locator("#bait")).to_have_text("Hello")
            page.page.wait_for_timeout(1500)
            assert page.page.url == url
            assert page.page.locator("meta[http-equiv]").count() == 0
            assert page.page.locator("meta[charset]").count() == 1
        assert recorder.hits == []
        assert not [m.text for m in page.console if "refresh" in m.text]
