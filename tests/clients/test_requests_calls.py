"""The calls pytest-mailpit makes, with `requests` as it makes them, against a running mxrelay:
one `Session` with Basic auth, redirects refused (a 3xx is an error to it: after a 301, a DELETE
would come back without its body, and an empty DELETE deletes everything), JSON bodies, and the
fields it reads, parsed as it parses them (`datetime.fromisoformat`, `Date` of `/livez`).
Written from what pytest-mailpit's client and models call and assert on, not copied."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.support.api_relay import OPERATOR, ApiRelay, png

TIMEOUT = 10


class Mailpit:
    """pytest-mailpit's transport: paths relative to the base URL, no redirects, errors raised."""

    def __init__(self, relay: ApiRelay) -> None:
        self.base = relay.base_url + "/"
        self.session = requests.Session()
        self.session.auth = OPERATOR

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(
            method, self.base + path, timeout=TIMEOUT, allow_redirects=False, **kwargs
        )
        assert not response.is_redirect, f"{method} {path} redirects"
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def search(self, query: str, start: int = 0, limit: int = 50) -> Any:
        return self.get_json("api/v1/search", query=query, start=start, limit=limit)

    def search_all(self, query: str, page_size: int = 250) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        start = 0
        while True:
            page = self.search(query, start=start, limit=page_size)
            for summary in page["messages"]:
                found.setdefault(summary["ID"], summary)
            start += len(page["messages"])
            if not page["messages"] or start >= page["messages_count"]:
                return list(found.values())


def addresses(summary: dict[str, Any], *fields: str) -> set[str]:
    return {a["Address"].lower() for f in fields for a in summary[f] or ()}


def test_readiness_and_the_server_clock(seeded: ApiRelay) -> None:
    mailpit = Mailpit(seeded)
    mailpit.request("GET", "readyz")
    date = mailpit.request("GET", "livez").headers["Date"]
    server_time = email.utils.parsedate_to_datetime(date).astimezone(UTC)
    assert abs(server_time - datetime.now(UTC)) < timedelta(seconds=5)


def test_info(seeded: ApiRelay) -> None:
    info = Mailpit(seeded).get_json("api/v1/info")
    assert info["Version"].startswith("v")
    for key in ("LatestVersion", "Database", "DatabaseSize", "Messages", "Unread", "Tags"):
        assert key in info
    assert info["Messages"] == 3


def test_a_page_of_messages_as_the_models_read_it(seeded: ApiRelay) -> None:
    page = Mailpit(seeded).get_json("api/v1/messages", start=0, limit=50)
    for key in ("messages", "messages_count", "messages_unread", "total", "unread", "start"):
        assert key in page
    assert page["total"] == page["messages_count"] == 3
    for summary in page["messages"]:
        assert summary["ID"]
        assert datetime.fromisoformat(summary["Created"]).tzinfo is not None
        assert isinstance(summary["Attachments"], int)
        assert isinstance(summary["Read"], bool)
    invoice = next(s for s in page["messages"] if s["Subject"] == "Invoice 42")
    assert invoice["From"] == {"Name": "Billing Team", "Address": "billing@example.org"}
    assert invoice["MessageID"] == "invoice-42@example.org"
    assert addresses(invoice, "To") == {"alex@example.net", "sam@example.net"}
    assert addresses(invoice, "Cc") == {"cc@example.net"}
    assert addresses(invoice, "ReplyTo") == {"noreply@example.org"}
    assert invoice["Tags"] == ["Quarter 1", "billing"] or sorted(invoice["Tags"]) == [
        "Quarter 1",
        "billing",
    ]
    assert "123456" in invoice["Snippet"]


@pytest.mark.parametrize(
    ("query", "subjects"),
    [
        ('addressed:"alex@example.net"', {"Invoice 42"}),
        ('to:"example.net"', {"Invoice 42", "Привет мир", "Files"}),
        ('from:"billing@example.org"', {"Invoice 42"}),
        ('subject:"Invoice 42"', {"Invoice 42"}),
        ('tag:"Quarter 1"', {"Invoice 42"}),
        ("has:attachment", {"Привет мир", "Files"}),
        ('subject:"Invoice" from:"billing"', {"Invoice 42"}),
    ],
)
def test_the_searches_its_query_builder_writes(
    seeded: ApiRelay, query: str, subjects: set[str]
) -> None:
    found = Mailpit(seeded).search_all(query, page_size=1)  # paged one by one, as it pages
    assert {s["Subject"] for s in found} == subjects


def test_a_bcc_recipient_in_no_header_is_found_as_a_recipient(seeded: ApiRelay) -> None:
    """wait_for_message(recipient=...) searches `addressed:` and then checks To, Cc and Bcc."""
    [found] = Mailpit(seeded).search_all('addressed:"bcc@example.net"')
    assert "bcc@example.net" in addresses(found, "To", "Cc", "Bcc")


def test_a_message_its_headers_raw_source_and_parts(seeded: ApiRelay) -> None:
    mailpit = Mailpit(seeded)
    [summary] = mailpit.search_all('subject:"Invoice 42"')
    message = mailpit.get_json(f"api/v1/message/{summary['ID']}")
    assert datetime.fromisoformat(message["Date"]) == datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
    assert message["ReturnPath"] == "billing@example.org"
    assert message["Text"].startswith("Your invoice 42 is ready.")
    unsubscribe = message["ListUnsubscribe"]
    assert unsubscribe["Links"] == ["mailto:leave@example.org", "https://example.org/leave"]
    assert unsubscribe["HeaderPost"].lower() == "list-unsubscribe=one-click"
    headers = mailpit.get_json(f"api/v1/message/{summary['ID']}/headers")
    assert headers["Subject"] == ["Invoice 42"]
    assert all(isinstance(v, list) for v in headers.values())
    raw = mailpit.request("GET", f"api/v1/message/{summary['ID']}/raw").content
    assert raw.endswith(b"The login code is 123456.\r\n")

    rich = mailpit.get_json("api/v1/message/latest", query='subject:"Привет"')
    [photo] = [a for a in rich["Attachments"] if a["FileName"] == "photo.png"]
    assert mailpit.request(
        "GET", f"api/v1/message/{rich['ID']}/part/{photo['PartID']}"
    ).content == (png(8, 6))
    assert [i["ContentID"] for i in rich["Inline"]] == ["chart@example.org"]


def test_fetching_a_message_marks_it_read(fresh: ApiRelay) -> None:
    mailpit = Mailpit(fresh)
    before = mailpit.get_json("api/v1/messages")
    assert before["unread"] == 3
    mailpit.get_json("api/v1/message/latest")
    after = mailpit.get_json("api/v1/messages")
    assert after["unread"] == 2
    assert after["messages"][0]["Read"] is True


def test_mark_read_and_unread(fresh: ApiRelay) -> None:
    mailpit = Mailpit(fresh)
    ids = [m["ID"] for m in mailpit.get_json("api/v1/messages")["messages"]]
    assert (
        mailpit.request("PUT", "api/v1/messages", json={"IDs": ids[:2], "Read": True}).text == "ok"
    )
    assert mailpit.get_json("api/v1/messages")["unread"] == 1
    mailpit.request("PUT", "api/v1/messages", json={"IDs": ids, "Read": False})
    assert mailpit.get_json("api/v1/messages")["unread"] == 3


def test_delete_by_ids_by_search_and_all(fresh: ApiRelay) -> None:
    mailpit = Mailpit(fresh)
    [invoice] = mailpit.search_all('subject:"Invoice 42"')
    assert mailpit.request("DELETE", "api/v1/messages", json={"IDs": [invoice["ID"]]}).text == "ok"
    assert mailpit.get_json("api/v1/messages")["total"] == 2
    mailpit.request("DELETE", "api/v1/search", params={"query": 'subject:"Files"'})
    assert mailpit.get_json("api/v1/messages")["total"] == 1
    mailpit.request("DELETE", "api/v1/messages")  # delete_all: no body
    assert mailpit.get_json("api/v1/messages")["total"] == 0


def test_an_unknown_message_is_mailpits_404(seeded: ApiRelay) -> None:
    response = requests.get(
        f"{seeded.base_url}/api/v1/message/nothing-here", auth=OPERATOR, timeout=TIMEOUT
    )
    assert (response.status_code, response.text.strip()) == (404, "404 page not found")
