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
    "audit": "audit",
}
SIZE_LIMIT = 250_000
"""Bytes of one screenshot at most (the README shows twelve of them)."""


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
            ids = page.eval_on_selector_all(
                "#messages tbody tr[data-id]", "rows => rows.map(row => row.dataset.id)"
            )
            # What the audit page shows: actions through the API, and one it refuses.
            for path, method, body in (
                ("api/v1/tags", "PUT", {"IDs": ids[1:3], "Tags": ["billing"]}),
                ("api/v1/messages", "PUT", {"IDs": ids[-1:], "Read": True}),
                ("api/v1/mxrelay/messages/retry", "POST", {"IDs": ids[:1]}),
                ("api/v1/messages", "PUT", {"IDs": "not a list"}),
            ):
                page.evaluate(
                    "([path, method, body]) => fetch(path, {method, body: JSON.stringify(body)})",
                    [path, method, body],
                )
            for name, path in PAGES.items():
                page.goto(relay.url + path.format(id=newest))
                page.wait_for_load_state("networkidle")
                target = folder / f"{name}-{scheme}.png"
                page.screenshot(path=str(target))
                assert png_size(target.read_bytes()) == (1200, 720)
                assert target.stat().st_size < SIZE_LIMIT, target.name
        finally:
            context.close()
