"""Mailpit's tag routes over real HTTP: `GET/PUT /api/v1/tags`, `PUT/DELETE /api/v1/tags/{Tag}`,
with Mailpit's tag rules, errors and status codes, and `X-Tags` on mail received over SMTP."""

from __future__ import annotations

from mxrelay.app import Relay
from tests.web.api_v1.conftest import call, mail, send


async def tags_by_subject(relay: Relay) -> dict[str, list[str]]:
    listing = (await call(relay, "GET", "/api/v1/messages")).json()
    return {m["Subject"]: m["Tags"] for m in listing["messages"]}


async def test_tags(relay: Relay) -> None:
    empty = await call(relay, "GET", "/api/v1/tags")
    assert (empty.status_code, empty.text) == (200, "[]")
    await send(
        relay,
        [
            ("s@example.org", ["r@example.net"], mail("One", extra="X-Tags: Invoices, urgent\r\n")),
            ("s@example.org", ["r@example.net"], mail("Two", extra="X-Tags: INVOICES\r\n")),
            ("s@example.org", ["r@example.net"], mail("Three")),
        ],
    )
    assert (await call(relay, "GET", "/api/v1/tags")).json() == ["Invoices", "urgent"]
    assert await tags_by_subject(relay) == {
        "One": ["Invoices", "urgent"],
        "Two": ["Invoices"],
        "Three": [],
    }
    ids = {
        m["Subject"]: m["ID"]
        for m in (await call(relay, "GET", "/api/v1/messages")).json()["messages"]
    }

    answer = await call(
        relay, "PUT", "/api/v1/tags", json={"ids": [ids["Two"], ids["Three"]], "tags": ["b/c", "A"]}
    )
    assert (answer.status_code, answer.text) == (200, "ok")
    assert await tags_by_subject(relay) == {
        "One": ["Invoices", "urgent"],
        "Two": ["A", "b c"],
        "Three": ["A", "b c"],
    }
    await call(relay, "PUT", "/api/v1/tags", json={"IDs": [ids["Three"]]})  # no Tags: cleared
    assert (await tags_by_subject(relay))["Three"] == []
    found = await call(relay, "GET", "/api/v1/search", params={"query": 'tag:"B C"'})
    assert [m["Subject"] for m in found.json()["messages"]] == ["Two"]

    answer = await call(relay, "PUT", "/api/v1/tags/urgent", json={"Name": "Later"})
    assert (answer.status_code, answer.text) == (200, "ok")
    for path, body, text in [
        ("/api/v1/tags/nope", {"Name": "x"}, "tag not found: nope"),
        ("/api/v1/tags/Later", {"Name": "invoices"}, "tag already exists: invoices"),
        ("/api/v1/tags/Later", {"Name": "%%%"}, "invalid tag name: "),
        (
            "/api/v1/tags/Later",
            {"Name": 5},
            "json: cannot unmarshal number into Go struct field .Name of type string",
        ),
    ]:
        answer = await call(relay, "PUT", path, json=body)
        assert (answer.status_code, answer.text) == (400, text), path
    empty_body = await call(relay, "PUT", "/api/v1/tags/Later", content=b"")
    assert (empty_body.status_code, empty_body.text) == (400, "EOF")
    bad = await call(relay, "PUT", "/api/v1/tags", content=b'{"IDs": 1}')
    assert bad.text == "json: cannot unmarshal number into Go struct field .IDs of type []string"

    answer = await call(relay, "DELETE", "/api/v1/tags/invoices")
    assert (answer.status_code, answer.text) == (200, "ok")
    missing = await call(relay, "DELETE", "/api/v1/tags/invoices")
    assert (missing.status_code, missing.text) == (400, "tag not found: invoices")
    assert (await call(relay, "GET", "/api/v1/tags")).json() == ["A", "b c", "Later"]
    assert await tags_by_subject(relay) == {"One": ["Later"], "Two": ["A", "b c"], "Three": []}
    listing = (await call(relay, "GET", "/api/v1/messages")).json()
    assert listing["tags"] == ["A", "b c", "Later"]
    assert listing["total"] == 3  # the messages stay
