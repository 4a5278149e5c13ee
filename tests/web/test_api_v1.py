"""The read-only message-log API and the operator's page, against a running relay in hold mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.processes import free_port
from tests.support.relay_app import relay_holding, running_relay

FIRST = (
    b"From: Billing <billing@example.org>\r\nTo: Alex <alex@example.net>\r\n"
    b"Subject: Invoice 42\r\nMessage-ID: <inv42@example.org>\r\n\r\nYour invoice is attached.\r\n"
)
SECOND = (
    b"From: App <app@example.org>\r\nTo: <sam@example.net>\r\n"
    b"Subject: <script>alert(1)</script>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    b"See the report.\r\n--b\r\nContent-Type: text/csv\r\n"
    b'Content-Disposition: attachment; filename="report.csv"\r\n\r\na,b\r\n1,2\r\n--b--\r\n'
)


@pytest.fixture
async def relay(dns_server: DnsServer, tmp_path: Path) -> AsyncIterator[Relay]:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    sent = [
        ("billing@example.org", ["alex@example.net"], FIRST),
        ("app@example.org", ["sam@example.net", "cc@example.net"], SECOND),
    ]
    async with relay_holding(dns_server.address, tmp_path / "log.db", sent) as running:
        yield running


async def get(relay: Relay, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as client:
        return await client.get(path)


async def test_message_latest_raw_and_deliveries(relay: Relay) -> None:
    latest = (await get(relay, "/api/v1/message/latest")).json()
    assert latest["Text"].strip() == "See the report."
    [report] = latest["Attachments"]
    assert (report["PartID"], report["FileName"], report["ContentType"], report["Size"]) == (
        "2",
        "report.csv",
        "text/csv",
        8,
    )
    assert "Delivery" not in latest  # a Mailpit object carries Mailpit's keys only
    assert latest["ReturnPath"] == "app@example.org"
    raw = await get(relay, f"/api/v1/message/{latest['ID']}/raw")
    assert raw.content == SECOND
    deliveries = (await get(relay, f"/api/v1/message/{latest['ID']}/deliveries")).json()
    assert [r["Address"] for r in deliveries["Recipients"]] == [
        "sam@example.net",
        "cc@example.net",
    ]
    assert (await get(relay, "/api/v1/message/01NOPE")).status_code == 404


async def test_page_escapes_what_clients_wrote(relay: Relay) -> None:
    page = (await get(relay, "/")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    latest = (await get(relay, "/api/v1/message/latest")).json()
    detail = await get(relay, f"/message/{latest['ID']}")
    assert detail.status_code == 200
    assert "sam@example.net" in detail.text
    info = (await get(relay, "/api/v1/info")).json()
    assert info["Messages"] == 2
    assert "Mode" not in info  # a Mailpit object carries Mailpit's keys only
    assert info["RuntimeStats"]["SMTPAccepted"] == 2


async def test_passthrough_has_no_log(dns_server: DnsServer) -> None:
    env = {
        "MXRELAY_DNS_SERVERS": dns_server.address,
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(free_port()),
    }
    async with running_relay(env) as relay:
        assert (await get(relay, "/api/v1/messages")).status_code == 404
        info = (await get(relay, "/api/v1/info")).json()
        assert (info["Messages"], info["Unread"], info["Tags"], info["Database"]) == (0, 0, {}, "")
        assert (await get(relay, "/readyz")).status_code in (200, 503)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "with_password",
    [
        lambda url: url.replace("://postgres@", "://postgres:G3n/er:t3d@"),
        lambda url: url + "?password=G3n/er:t3d",
    ],
    ids=["in the authority", "in the query"],
)
async def test_info_never_shows_the_database_password(
    dns_server: DnsServer, postgres_url: str, with_password: Callable[[str], str]
) -> None:
    """`/api/v1/info` answers without authentication; the test cluster trusts any password."""
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": with_password(postgres_url),
        "MXRELAY_DNS_SERVERS": dns_server.address,
    }
    async with running_relay(env) as relay:
        info = await get(relay, "/api/v1/info")
    assert info.status_code == 200
    assert "G3n" not in info.text
    assert "********" in info.json()["Database"]
