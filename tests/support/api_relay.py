"""A running `mxrelay serve` whose message log the API's contract tests and the real clients
drive: hold mode (nothing leaves), SQLite, recipient domains answered by the test DNS server, and
a corpus sent through SMTP with what Mailpit's clients read (display names, Cc, a Bcc recipient
named in no header, Reply-To, X-Tags, List-Unsubscribe, an attachment, an inline image, a
non-ASCII subject)."""

from __future__ import annotations

import base64
import contextlib
import smtplib
import struct
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.dns_server import DnsServer
from tests.support.passwords import hash_password
from tests.support.processes import ServeProcess, free_port, wait_for_port
from tests.support.relay_app import ROUTABLE_FOR_TESTS


def png(width: int = 4, height: int = 3) -> bytes:
    """A small valid PNG (grey pixels), for the thumbnail route."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows)),
            chunk(b"IEND", b""),
        )
    )


def _base64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


PLAIN = (
    b"From: Billing Team <billing@example.org>\r\n"
    b"To: Alex Doe <alex@example.net>, sam@example.net\r\n"
    b"Cc: Carbon Copy <cc@example.net>\r\n"
    b"Reply-To: No Reply <noreply@example.org>\r\n"
    b"Subject: Invoice 42\r\n"
    b"Date: Tue, 03 Feb 2026 10:00:00 +0100\r\n"
    b"Message-ID: <invoice-42@example.org>\r\n"
    b"X-Tags: billing, Quarter 1\r\n"
    b"List-Unsubscribe: <mailto:leave@example.org>, <https://example.org/leave>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"\r\n"
    b"Your invoice 42 is ready.\r\nThe login code is 123456.\r\n"
)
"""To alex and sam, Cc cc, and bcc@example.net by envelope only."""

RICH = (
    b"From: App <app@example.org>\r\n"
    b"To: <ops@example.net>\r\n"
    b"Subject: =?utf-8?B?0J/RgNC40LLQtdGCINC80LjRgA==?=\r\n"
    b"Message-ID: <rich-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/related; boundary="rel"\r\n'
    b"\r\n"
    b"--rel\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n'
    b"\r\n"
    b"--alt\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"See the report and the chart.\r\n"
    b"--alt\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b'<p>See the <a href="https://example.org/report">report</a> and the chart:'
    b' <img src="cid:chart@example.org"></p>\r\n'
    b"--alt--\r\n"
    b"--rel\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-ID: <chart@example.org>\r\n"
    b'Content-Disposition: inline; filename="chart.png"\r\n'
    b"\r\n" + _base64_lines(png()) + b"\r\n"
    b"--rel--\r\n"
    b"--outer\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="photo.png"\r\n'
    b"\r\n" + _base64_lines(png(8, 6)) + b"\r\n"
    b"--outer\r\n"
    b"Content-Type: text/csv\r\n"
    b'Content-Disposition: attachment; filename="report.csv"\r\n'
    b"\r\n"
    b"a,b\r\n1,2\r\n"
    b"--outer--\r\n"
)
"""Text and HTML, an inline image referenced by cid, a PNG and a CSV attachment."""

FILES = (
    b"From: Sender Smith <sender@example.org>\r\n"
    b"To: Recipient Ross <recipient@example.net>\r\n"
    b"Subject: Files\r\n"
    b"Message-ID: <files-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="f"\r\n'
    b"\r\n"
    b"--f\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Two files.\r\n"
    b"--f\r\n"
    b"Content-Type: text/plain\r\n"
    b'Content-Disposition: attachment; filename="attachment.txt"\r\n'
    b"\r\n"
    b"This is a test attachment\r\n"
    b"\r\n--f\r\n"
    b"Content-Type: text/plain\r\n"
    b'Content-Disposition: inline; filename="attachment_inline.txt"\r\n'
    b"\r\n"
    b"This is an inline attachment\r\n"
    b"\r\n--f--\r\n"
)
"""A text body, an attachment (part 2) and a named inline text part (part 3), the layout a
Python client's suite reads part numbers from."""

SEED: tuple[tuple[str, tuple[str, ...], bytes], ...] = (
    ("billing@example.org", ("alex@example.net", "sam@example.net", "bcc@example.net"), PLAIN),
    ("app@example.org", ("ops@example.net",), RICH),
    ("sender@example.org", ("recipient@example.net",), FILES),
)
"""(envelope sender, envelope recipients, message), sent in this order."""


@dataclass(frozen=True, slots=True)
class ApiRelay:
    process: ServeProcess
    web_port: int
    workdir: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def send(self, sender: str, recipients: tuple[str, ...], message: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.process.smtp_port, timeout=30) as client:
            client.sendmail(sender, list(recipients), message)


OPERATOR = ("operator", "operator-secret")
VIEWER = ("viewer", "viewer-secret")


def users_env(workdir: Path) -> dict[str, str]:
    """A users file with an operator and a viewer, and the settings that name it."""
    path = workdir / "ui-users"
    path.write_text(
        "".join(f"{name}:{hash_password(password)}\n" for name, password in (OPERATOR, VIEWER)),
        encoding="utf-8",
    )
    return {"MXRELAY_UI_AUTH_FILE": str(path), "MXRELAY_UI_OPERATORS": OPERATOR[0]}


@contextlib.contextmanager
def api_relay(
    env: Mapping[str, str] | None = None, *, seed: bool = True, users: bool = False
) -> Iterator[ApiRelay]:
    """`mxrelay serve` in hold mode with the corpus in its log (unless `seed` is false); with
    `users`, HTTP Basic with OPERATOR and VIEWER."""
    with (
        tempfile.TemporaryDirectory(prefix="mxrelay-api-") as scratch,
        DnsServer() as dns,
    ):
        for domain in ("example.net", "example.org"):
            dns.mx(domain, f"10 mx.{domain}")
            dns.a(f"mx.{domain}", "192.0.2.10")
        workdir, web_port = Path(scratch), free_port()
        if users:
            env = {**users_env(workdir), **(env or {})}
        process = ServeProcess(
            {
                "MXRELAY_DELIVERY": "hold",
                "MXRELAY_DATABASE_URL": f"sqlite:///{workdir / 'log.db'}",
                "MXRELAY_HTTP_LISTEN": f"127.0.0.1:{web_port}",
                "MXRELAY_DNS_SERVERS": dns.address,
                "MXRELAY_DNS_ROUTABLE_NETWORKS": ROUTABLE_FOR_TESTS,
                "MXRELAY_DNS_QUERY_TIMEOUT": "1s",
                "MXRELAY_DNS_RCPT_TIMEOUT": "2s",
                **(env or {}),
            },
            workdir / "relay.log",
        )
        try:
            wait_for_port(web_port, process=process.process)
            relay = ApiRelay(process, web_port, workdir)
            if seed:
                for sender, recipients, message in SEED:
                    relay.send(sender, recipients, message)
            yield relay
        finally:
            process.close()
