"""Mailpit's message list over real HTTP and SMTP: `GET/PUT/DELETE /api/v1/messages` and
`GET/DELETE /api/v1/search`, their shapes, parameters, status codes and error texts; and, on
SQLite and PostgreSQL, the change each route reports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from mxrelay.app import Relay
from mxrelay.store.backend import Database
from mxrelay.web.api_v1 import api_routes
from mxrelay.web.api_v1.changes import Change, MessagesDeleted, ReadChanged, mailpit_events
from mxrelay.web.api_v1.context import MAX_LIMIT
from mxrelay.web.api_v1.requests import BODY_LIMIT
from tests.store.helpers import T0, accept, message_bytes, record, transaction
from tests.web.api_v1.conftest import call, mail, send

WRAPPER_KEYS = {
    "total",
    "unread",
    "count",
    "messages_count",
    "messages_unread",
    "start",
    "tags",
    "messages",
}
SUMMARY_KEYS = [
    "ID",
    "MessageID",
    "Read",
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "Subject",
    "Created",
    "Username",
    "Tags",
    "Size",
    "Attachments",
    "Snippet",
]
INVOICE = (
    b"From: Billing Team <billing@example.org>\r\nTo: Alex <alex@example.net>\r\n"
    b'Cc: "Doe, Jane" <jane@example.com>\r\nReply-To: help@example.org\r\n'
    b"X-Tags: Invoices, urgent\r\nSubject: Invoice 42\r\nMessage-ID: <inv42@example.org>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nYour invoice is attached.\r\n"
    b"--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=i.csv\r\n\r\n"
    b"a,b\r\n--b--\r\n"
)


async def ids_of(relay: Relay, path: str = "/api/v1/messages") -> list[str]:
    return [m["ID"] for m in (await call(relay, "GET", path)).json()["messages"]]


async def test_the_list_in_mailpit_shape(relay: Relay) -> None:
    await send(
        relay,
        [
            ("bounce@example.org", ["alex@example.net", "blind@example.org"], INVOICE),
            ("sender@example.org", ["rcpt@example.net"], mail("Second")),
        ],
    )
    answer = await call(relay, "GET", "/api/v1/messages")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == WRAPPER_KEYS
    assert {k: body[k] for k in WRAPPER_KEYS - {"messages"}} == {
        "total": 2,
        "unread": 2,
        "count": 2,
        "messages_count": 2,
        "messages_unread": 2,
        "start": 0,
        "tags": ["Invoices", "urgent"],
    }
    second, invoice = body["messages"]
    assert list(invoice) == SUMMARY_KEYS
    assert {k: v for k, v in invoice.items() if k not in ("ID", "Created", "Size")} == {
        "MessageID": "inv42@example.org",
        "Read": False,
        "From": {"Name": "Billing Team", "Address": "billing@example.org"},
        "To": [{"Name": "Alex", "Address": "alex@example.net"}],
        "Cc": [{"Name": "Doe, Jane", "Address": "jane@example.com"}],
        "Bcc": [{"Name": "", "Address": "blind@example.org"}],  # the envelope's blind recipient
        "ReplyTo": [{"Name": "", "Address": "help@example.org"}],
        "Subject": "Invoice 42",
        "Username": "",
        "Tags": ["Invoices", "urgent"],
        "Attachments": 1,
        "Snippet": "Your invoice is attached.",
    }
    assert invoice["Size"] == len(INVOICE)
    assert len(invoice["ID"]) == 26
    created = datetime.fromisoformat(invoice["Created"])
    assert invoice["Created"].endswith("Z")
    assert created.microsecond % 1000 == 0  # Mailpit keeps milliseconds
    assert (second["Cc"], second["Bcc"], second["ReplyTo"], second["Tags"]) == ([], [], [], [])


async def test_paging_parameters_as_mailpit_reads_them(relay: Relay) -> None:
    await send(relay, [("s@example.org", ["r@example.net"], mail(f"M{n}")) for n in range(4)])
    newest_first = await ids_of(relay)
    assert len(newest_first) == 4
    cases = {
        "?start=1&limit=2": newest_first[1:3],
        "?start=abc&limit=xyz": newest_first,  # not numbers: the defaults, not an error
        "?start=-3&limit=0": newest_first,
        "?start=%2B1": newest_first[1:],  # Go reads a sign
        "?start=+1": newest_first,  # a space, in a query string: not a number
        "?start=1e3": newest_first,
        "?start=9223372036854775807": [],
        "?start=9223372036854775808": newest_first,  # beyond Go's int: the default
        f"?limit={'9' * 5000}": newest_first,
        f"?limit={MAX_LIMIT + 1}": newest_first,
    }
    for query, expected in cases.items():
        answer = await call(relay, "GET", f"/api/v1/messages{query}")
        assert answer.status_code == 200, query
        body = answer.json()
        assert [m["ID"] for m in body["messages"]] == expected, query
        assert body["messages_count"] == 4, query
    third = (await call(relay, "GET", "/api/v1/messages")).json()["messages"][1]
    before = await call(relay, "GET", "/api/v1/messages", params={"before": third["Created"]})
    assert [m["ID"] for m in before.json()["messages"]] == newest_first[2:]
    assert before.json()["start"] == 0
    millis = int(datetime.fromisoformat(third["Created"]).timestamp() * 1000)
    assert await ids_of(relay, f"/api/v1/messages?before={millis}") == newest_first[2:]
    assert await ids_of(relay, "/api/v1/messages?before=not-a-date") == newest_first


async def test_search(relay: Relay) -> None:
    await send(
        relay,
        [
            ("bounce@example.org", ["alex@example.net", "blind@example.org"], INVOICE),
            ("sender@example.org", ["rcpt@example.net"], mail("Weekly report")),
        ],
    )
    found = (await call(relay, "GET", "/api/v1/search", params={"query": "invoice"})).json()
    assert set(found) == WRAPPER_KEYS
    assert [m["Subject"] for m in found["messages"]] == ["Invoice 42"]
    assert (found["messages_count"], found["messages_unread"], found["total"]) == (1, 1, 2)
    assert found["count"] == 1
    for query, subjects in {
        "bcc:blind": ["Invoice 42"],
        "addressed:blind@example.org": ["Invoice 42"],
        'from:"billing team"': ["Invoice 42"],
        "-tag:urgent": ["Weekly report"],
        "subject:weekly has:attachment": [],
        "after:2000-01-01 is:unread": ["Weekly report", "Invoice 42"],
    }.items():
        answer = await call(relay, "GET", "/api/v1/search", params={"query": query})
        assert [m["Subject"] for m in answer.json()["messages"]] == subjects, query
    paged = await call(relay, "GET", "/api/v1/search", params={"query": "example", "start": "1"})
    assert paged.json()["start"] == 1
    assert len(paged.json()["messages"]) == 1
    for params in ({}, {"query": ""}, {"query": "   "}):
        answer = await call(relay, "GET", "/api/v1/search", params=params)
        assert (answer.status_code, answer.text) == (400, "Error: no search query")
    too_long = await call(relay, "GET", "/api/v1/search", params={"query": "x" * 1001})
    assert too_long.status_code == 400
    assert too_long.text.startswith("search query too long")
    many = await call(relay, "GET", "/api/v1/search", params={"query": "a " * 30})
    assert many.status_code == 400


async def test_search_dates_in_the_request_time_zone(relay: Relay) -> None:
    await send(relay, [("s@example.org", ["r@example.net"], mail("Today"))])
    [message] = (await call(relay, "GET", "/api/v1/messages")).json()["messages"]
    created = datetime.fromisoformat(message["Created"])
    # A minute before the message, as a clock 14 hours ahead of UTC shows it, with no zone.
    ahead = created.astimezone(ZoneInfo("Pacific/Kiritimati")) - timedelta(minutes=1)
    local = ahead.strftime("%Y-%m-%dT%H:%M:%S")
    for tz, count in (("Pacific/Kiritimati", 1), ("", 0), ("UTC", 0), ("Nowhere/Land", 0)):
        params = {"query": f"after:{local}", "tz": tz}
        answer = await call(relay, "GET", "/api/v1/search", params=params)
        assert answer.json()["messages_count"] == count, tz
    for tz in ("../../etc/passwd", "x" * 100, "/etc/localtime"):
        answer = await call(relay, "GET", "/api/v1/search", params={"query": "today", "tz": tz})
        assert answer.json()["messages_count"] == 1  # a zone that cannot be loaded is ignored


async def unread(relay: Relay) -> tuple[int, list[str]]:
    body = (await call(relay, "GET", "/api/v1/messages")).json()
    return body["unread"], [m["ID"] for m in body["messages"] if not m["Read"]]


async def test_read_flags(relay: Relay) -> None:
    await send(relay, [("s@example.org", ["r@example.net"], mail(f"Report {n}")) for n in range(3)])
    await send(relay, [("s@example.org", ["r@example.net"], mail("Other"))])
    other, *reports = await ids_of(relay)
    answer = await call(relay, "PUT", "/api/v1/messages", json={"ids": [reports[0]], "read": True})
    assert (answer.status_code, answer.text) == (200, "ok")
    assert answer.headers["content-type"].startswith("text/plain")
    assert await unread(relay) == (3, [other, *reports[1:]])
    answer = await call(relay, "PUT", "/api/v1/messages", json={"Search": "report", "Read": True})
    assert await unread(relay) == (1, [other])
    await call(relay, "PUT", "/api/v1/messages", json={"Read": True})  # neither: every message
    assert await unread(relay) == (0, [])
    await call(relay, "PUT", "/api/v1/messages", json={})  # Read defaults to false
    assert await unread(relay) == (4, [other, *reports])
    await call(relay, "PUT", "/api/v1/messages", json={"IDs": [], "Search": "", "Read": True})
    assert await unread(relay) == (0, [])
    errors = {
        b"": "EOF",
        b"{": "unexpected EOF",
        b"nope": "invalid character 'o' in literal null (expecting 'u')",
        json.dumps({"IDs": [other], "Search": "x"}).encode(): (
            "You may specify either IDs or a search query, not both"
        ),
        b'{"Read": "yes"}': "json: cannot unmarshal string into Go struct field .Read of type bool",
        b'{"IDs": "x"}': "json: cannot unmarshal string into Go struct field .IDs of type []string",
        b"[]": (
            "json: cannot unmarshal array into Go value of type "
            "struct { Read bool; IDs []string; Search string }"
        ),
        json.dumps({"IDs": ["x"] * 10_001}).encode(): "too many IDs (at most 10000)",
    }
    for body, text in errors.items():
        answer = await call(relay, "PUT", "/api/v1/messages", content=body)
        assert (answer.status_code, answer.text) == (400, text), body[:40]
    big = await call(relay, "PUT", "/api/v1/messages", content=b" " * (BODY_LIMIT + 1))
    assert (big.status_code, big.text) == (
        413,
        f"request body too large (at most {BODY_LIMIT} bytes)",
    )
    assert await unread(relay) == (0, [])


async def test_delete(relay: Relay) -> None:
    await send(relay, [("s@example.org", ["r@example.net"], mail(f"Keep {n}")) for n in range(2)])
    await send(relay, [("s@example.org", ["r@example.net"], mail("Drop"))])
    drop, *keep = await ids_of(relay)
    answer = await call(relay, "DELETE", "/api/v1/messages", json={"IDs": [drop, "01UNKNOWN"]})
    assert (answer.status_code, answer.text) == (200, "ok")
    assert await ids_of(relay) == keep
    big = await call(relay, "DELETE", "/api/v1/messages", content=b"x" * (BODY_LIMIT + 1))
    assert big.status_code == 413
    assert await ids_of(relay) == keep  # a body too large is refused, never read as "everything"
    too_many = await call(relay, "DELETE", "/api/v1/messages", json={"IDs": ["x"] * 10_001})
    assert (too_many.status_code, too_many.text) == (400, "too many IDs (at most 10000)")
    # Mailpit deletes everything when the body names no message: none, empty, not JSON, wrong.
    for body in (None, b"", b"{}", b'{"IDs": []}', b"not json", b'{"IDs": "x"}'):
        await send(relay, [("s@example.org", ["r@example.net"], mail("Again"))])
        answer = await call(relay, "DELETE", "/api/v1/messages", content=body)
        assert (answer.status_code, answer.text) == (200, "ok")
        listing = (await call(relay, "GET", "/api/v1/messages")).json()
        assert (listing["total"], listing["messages"]) == (0, []), body


async def test_delete_search(relay: Relay) -> None:
    await send(
        relay,
        [
            ("s@example.org", ["r@example.net"], mail("Drop me")),
            ("s@example.org", ["r@example.net"], mail("Keep me")),
        ],
    )
    for params in ({}, {"query": " "}):
        answer = await call(relay, "DELETE", "/api/v1/search", params=params)
        assert (answer.status_code, answer.text) == (400, "Error: no search query")
    answer = await call(relay, "DELETE", "/api/v1/search", params={"query": "subject:drop"})
    assert (answer.status_code, answer.text) == (200, "ok")
    [kept] = (await call(relay, "GET", "/api/v1/messages")).json()["messages"]
    assert kept["Subject"] == "Keep me"


# --- the routes over a store of either kind, and the changes they report ----------------------


@pytest.fixture
async def api(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, list[Change]]]:
    changes: list[Change] = []
    app = Starlette(routes=api_routes(lambda: db, info_facts=dict, on_change=changes.append))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
        yield client, changes


async def test_changes_are_reported(
    db: Database, api: tuple[httpx.AsyncClient, list[Change]]
) -> None:
    client, changes = api
    records = [
        record(transaction(data=message_bytes(subject=f"m{n}"), received_at=T0.replace(second=n)))
        for n in range(3)
    ]
    await accept(db, *records)
    first, second, third = (r.id for r in records)
    await client.put("/api/v1/messages", json={"IDs": [first, second], "Read": True})
    await client.put("/api/v1/messages", json={"Search": "m2", "Read": True})
    await client.put("/api/v1/messages", json={"Read": False})
    await client.request("DELETE", "/api/v1/messages", json={"IDs": [first]})
    await client.delete("/api/v1/search", params={"query": "m1"})
    await client.delete("/api/v1/messages")
    assert changes == [
        ReadChanged((first, second), True),
        ReadChanged((third,), True),
        ReadChanged((third, second, first), False, everything=True),
        MessagesDeleted((first,), count=1),
        MessagesDeleted((second,), count=1),
        MessagesDeleted((third,), True, 1),
    ]
    assert [mailpit_events(c) for c in changes] == [
        [("update", {"ID": first, "Read": True}), ("update", {"ID": second, "Read": True})],
        [("update", {"ID": third, "Read": True})],
        [],
        [("delete", {"ID": first})],
        [("delete", {"ID": second})],
        [("truncate", None)],
    ]
    listing = (await client.get("/api/v1/messages")).json()
    assert (listing["total"], listing["messages"]) == (0, [])


async def test_without_a_store_every_route_is_not_found() -> None:
    app = Starlette(routes=api_routes(lambda: None, info_facts=dict))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
        for method, path in [
            ("GET", "/api/v1/messages"),
            ("PUT", "/api/v1/messages"),
            ("DELETE", "/api/v1/messages"),
            ("GET", "/api/v1/search?query=x"),
            ("DELETE", "/api/v1/search?query=x"),
            ("GET", "/api/v1/tags"),
            ("PUT", "/api/v1/tags"),
            ("PUT", "/api/v1/tags/x"),
            ("DELETE", "/api/v1/tags/x"),
        ]:
            answer = await client.request(method, path)
            assert (answer.status_code, answer.text) == (404, "404 page not found"), path
