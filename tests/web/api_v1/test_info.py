"""/api/v1/info over real HTTP: Mailpit's AppInformation, key for key, with truthful values; and
the probes on the UI port with the Date header clients read the server's clock from."""

from __future__ import annotations

import email.utils
import time

from tests.web.api_v1.conftest import SENT, Mailbox

INFO_KEYS = {
    "Version", "LatestVersion", "Database", "DatabaseSize", "Messages", "Unread", "Tags",
    "RuntimeStats",
}  # fmt: skip
RUNTIME_KEYS = {
    "Uptime", "Memory", "MessagesDeleted", "SMTPAccepted", "SMTPAcceptedSize", "SMTPRejected",
    "SMTPIgnored",
}  # fmt: skip


async def test_app_information(mailbox: Mailbox) -> None:
    info = (await mailbox.get("/api/v1/info")).json()
    assert set(info) == INFO_KEYS
    assert set(info["RuntimeStats"]) == RUNTIME_KEYS
    assert info["Version"].startswith("v")
    assert info["LatestVersion"] == ""  # never looked up: the relay does not call out
    assert info["Database"].startswith("sqlite:///")
    assert info["Database"].endswith("log.db")
    assert info["DatabaseSize"] > 0
    assert (info["Messages"], info["Unread"], info["Tags"]) == (4, 4, {})
    stats = info["RuntimeStats"]
    assert stats["SMTPAccepted"] == len(SENT)
    assert stats["SMTPAcceptedSize"] > 3000
    assert (stats["SMTPRejected"], stats["SMTPIgnored"], stats["MessagesDeleted"]) == (0, 0, 0)
    assert stats["Uptime"] >= 0
    assert stats["Memory"] > 10_000_000


async def test_probes_on_the_ui_port_send_a_date(mailbox: Mailbox) -> None:
    for probe in ("/livez", "/readyz"):
        answer = await mailbox.get(probe)
        assert answer.status_code == 200
        sent = email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp()
        assert abs(sent - time.time()) < 5
