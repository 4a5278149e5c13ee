"""Reading a message marks it read through each route that shows one (the API's message, its
HTML view, the console's page), unless the browser says another site's page asked for it (an
image or a frame there, sent with the user's stored login): that read is answered and marks
nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.web.api_v1.conftest import Mailbox

ROUTES = ["/api/v1/message/{}", "/view/{}.html", "/message/{}", "/api/v1/message/latest"]
"""`html-only` is the newest message, so `latest` reads it too."""


@pytest.mark.parametrize("route", ROUTES)
async def test_a_read_marks_it_unless_another_site_asked(mailbox: Mailbox, route: str) -> None:
    ident = mailbox.ids["html-only"]
    async with httpx.AsyncClient(base_url=mailbox.base) as client:

        async def read_after(site: str | None) -> bool:
            unread = {"IDs": [ident], "Read": False}
            assert (await client.put("/api/v1/messages", json=unread)).status_code == 200
            headers = {"Sec-Fetch-Site": site} if site else {}
            shown = await client.get(route.format(ident), headers=headers)
            assert shown.status_code == 200
            listing = (await client.get("/api/v1/messages")).json()["messages"]
            return bool({m["ID"]: m["Read"] for m in listing}[ident])

        assert await read_after("cross-site") is False
        assert await read_after("Same-Site") is False
        assert await read_after("same-origin") is True  # the relay's own page
        assert await read_after("none") is True  # typed in, or a bookmark
        assert await read_after(None) is True  # a client, not a browser
