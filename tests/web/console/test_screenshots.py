"""Screenshots of the console's main pages, light and dark, as the README shows them.

Every run takes them (a page that fails to render fails here); they are written into
docs/screenshots/ only when asked: `MXRELAY_WRITE_SCREENSHOTS=1 .venv/bin/pytest
tests/web/console/test_screenshots.py`, so an ordinary test run leaves the work tree alone.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.support.browser import SCREENSHOTS, RelayThread, watched
from tests.web.console.conftest import PLAIN, hold_env, rich

pytestmark = pytest.mark.slow

PAGES = {
    "messages": "",
    "message": "message/{id}?tab=html",
    "delivery": "message/{id}?tab=recipients",
    "queue": "queue",
    "refusals": "refusals?check=nobody@nowhere.invalid",
    "summary": "summary",
}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(tmp_path: Path, browser: Browser, scheme: str) -> None:
    write = os.environ.get("MXRELAY_WRITE_SCREENSHOTS") == "1"
    folder = SCREENSHOTS if write else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    with RelayThread(hold_env(tmp_path)) as relay:
        relay.send("billing@example.org", ["alex@example.net"], PLAIN)
        for n, (sender, to) in enumerate(
            [
                ("reports@example.org", ["sam@example.net", "kim@example.net"]),
                ("noreply@example.org", ["alex@example.net"]),
                ("booking@example.org", ["guest@example.net"]),
            ]
        ):
            relay.send(
                sender, to, rich(("Quarterly report", "Password reset", "Booking confirmed")[n])
            )
        context = browser.new_context(
            color_scheme=scheme,  # type: ignore[arg-type]
            viewport={"width": 1200, "height": 720},
        )
        try:
            page = watched(context).page
            page.goto(relay.url)
            newest = page.locator("#messages tbody tr[data-id]").first.get_attribute("data-id")
            for name, path in PAGES.items():
                page.goto(relay.url + path.format(id=newest))
                page.wait_for_load_state("networkidle")
                target = folder / f"{name}-{scheme}.png"
                page.screenshot(path=str(target))
                assert png_size(target.read_bytes()) == (1200, 720)
        finally:
            context.close()
