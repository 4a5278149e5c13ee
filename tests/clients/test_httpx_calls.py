"""The calls two other helpers make, with `httpx`, against a running mxrelay: the Python
mailpit-api-client (module-level `httpx.get`/`put`/`request`, `raise_for_status`, and form
bodies where Mailpit expects JSON) and playwright-mailpit (every request with JSON content type
and `Accept` headers, an empty `IDs` list to delete everything, tags with spaces in the path).
Written from what those clients call and assert on, not copied."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.api_relay import OPERATOR, ApiRelay, png

TIMEOUT = 10
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture
async def playwright(fresh: ApiRelay) -> AsyncIterator[httpx.AsyncClient]:
    """playwright-mailpit's requests: JSON headers on every one, the base URL without a slash."""
    async with httpx.AsyncClient(
        base_url=fresh.base_url, headers=JSON_HEADERS, auth=OPERATOR, timeout=TIMEOUT
    ) as client:
        yield client


def messages(relay: ApiRelay, limit: int = 50, start: int = 0) -> dict[str, Any]:
    response = httpx.get(
        f"{relay.base_url}/api/v1/messages",
        params={"limit": limit, "start": start},
        auth=OPERATOR,
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def test_the_listing_has_the_keys_its_model_requires(seeded: ApiRelay) -> None:
    page = messages(seeded, limit=2, start=1)
    for key in ("total", "unread", "count", "start", "messages"):
        assert key in page
    assert (page["total"], page["count"], page["start"]) == (3, 2, 1)
    for summary in page["messages"]:
        for key in ("ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "Subject", "Created"):
            assert key in summary
        assert isinstance(summary["Size"], int)
        assert isinstance(summary["Attachments"], int)


def test_attachments_and_inline_parts_are_numbered_as_mailpit_numbers_them(
    seeded: ApiRelay,
) -> None:
    [files] = [m for m in messages(seeded)["messages"] if m["Subject"] == "Files"]
    response = httpx.get(
        f"{seeded.base_url}/api/v1/message/{files['ID']}", auth=OPERATOR, timeout=TIMEOUT
    )
    response.raise_for_status()
    message = response.json()
    assert [
        (a["PartID"], a["FileName"], a["ContentType"], a["ContentID"], a["Size"])
        for a in message["Attachments"]
    ] == [("2", "attachment.txt", "text/plain", "", 27)]
    assert [(a["PartID"], a["FileName"]) for a in message["Inline"]] == [
        ("3", "attachment_inline.txt")
    ]
    for part, text in (
        ("2", "This is a test attachment\r\n"),
        ("3", "This is an inline attachment\r\n"),
    ):
        got = httpx.get(
            f"{seeded.base_url}/api/v1/message/{files['ID']}/part/{part}",
            auth=OPERATOR,
            timeout=TIMEOUT,
        )
        got.raise_for_status()
        assert got.text == text


def test_headers_are_lists_under_go_canonical_names(seeded: ApiRelay) -> None:
    [files] = [m for m in messages(seeded)["messages"] if m["Subject"] == "Files"]
    response = httpx.get(
        f"{seeded.base_url}/api/v1/message/{files['ID']}/headers", auth=OPERATOR, timeout=TIMEOUT
    )
    response.raise_for_status()
    headers = response.json()
    assert headers["Content-Type"] == ['multipart/mixed; boundary="f"']
    assert headers["From"] == ["Sender Smith <sender@example.org>"]
    assert headers["Message-Id"] == ["<files-1@example.org>"]
    assert headers["Mime-Version"] == ["1.0"]


def test_a_form_body_on_delete_is_no_json_so_everything_is_deleted(fresh: ApiRelay) -> None:
    """The Python client sends `data={"ids": [...]}`: Mailpit reads no JSON there, and a
    DELETE without IDs deletes every message."""
    ids = [m["ID"] for m in messages(fresh)["messages"]]
    response = httpx.request(
        "DELETE",
        f"{fresh.base_url}/api/v1/messages",
        data={"ids": ids[:1]},
        auth=OPERATOR,
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    assert response.text == "ok"
    assert messages(fresh)["total"] == 0


def test_a_form_body_on_put_is_refused_as_mailpit_refuses_it(fresh: ApiRelay) -> None:
    ids = [m["ID"] for m in messages(fresh)["messages"]]
    response = httpx.put(
        f"{fresh.base_url}/api/v1/messages",
        data={"ids": ids, "Read": "true"},
        auth=OPERATOR,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert messages(fresh)["unread"] == 3


async def test_playwright_helpers_calls(playwright: httpx.AsyncClient) -> None:
    listing = (
        await playwright.get("/api/v1/messages", params={"start": "0", "limit": "50"})
    ).json()
    ids = [m["ID"] for m in listing["messages"]]

    async def ok(method: str, path: str, **kwargs: Any) -> None:
        response = await playwright.request(method, path, **kwargs)
        assert (response.status_code, response.text) == (200, "ok"), f"{method} {path}"

    await ok("PUT", "/api/v1/messages", json={"IDs": ids[:1], "Read": True})
    await ok("PUT", "/api/v1/tags", json={"Tags": ["Playwright run", "smoke"], "IDs": ids[:2]})
    assert {"Playwright run", "smoke"} <= set((await playwright.get("/api/v1/tags")).json())
    await ok("PUT", f"/api/v1/tags/{quote('Playwright run', safe='')}", json={"Name": "renamed"})
    tagged = (await playwright.get("/api/v1/search", params={"query": "tag:renamed"})).json()
    assert tagged["messages_count"] == 2
    await ok("DELETE", f"/api/v1/tags/{quote('smoke', safe='')}")

    sent = await playwright.post(
        "/api/v1/send",
        json={
            "From": {"Email": "app@example.org"},
            "To": [{"Email": "user@example.net", "Name": "User"}],
            "Subject": "Sent by a helper",
            "Text": "Hello",
            "HTML": "<p>Hello <b>there</b></p>",
            "Tags": ["helper"],
            "Attachments": [
                {"Filename": "pixel.png", "Content": base64.b64encode(png()).decode("ascii")}
            ],
        },
    )
    assert sent.status_code == 200, sent.text
    new_id = sent.json()["ID"]
    message = (await playwright.get(f"/api/v1/message/{new_id}")).json()
    assert message["Tags"] == ["helper"]
    assert [a["FileName"] for a in message["Attachments"]] == ["pixel.png"]
    html = await playwright.get(f"/view/{new_id}.html", params={"embed": "1"})
    assert html.status_code == 200
    assert "there" in html.text
    text = await playwright.get(f"/view/{new_id}.txt")
    assert text.text.strip() == "Hello"
    await ok("POST", f"/api/v1/message/{new_id}/release", json={"To": ["copy@example.net"]})

    await ok("DELETE", "/api/v1/search", params={"query": "subject:Files"})
    await ok("DELETE", "/api/v1/messages", json={"IDs": []})  # deleteAllMessages
    assert (await playwright.get("/api/v1/messages")).json()["total"] == 0
