"""What the console's browser tests share: a relay in hold mode with a few messages in its log
(one per module), the messages themselves, and an HTTP server on 127.0.0.1 that counts what is
asked of it (the "remote" images a hostile message points at)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.browser import RelayThread

# A 2x2 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)

PLAIN = (
    b"From: Billing <billing@example.org>\r\nTo: Alex <alex@example.net>\r\n"
    b"Subject: Invoice 42\r\nMessage-ID: <inv42@example.org>\r\n\r\n"
    b"Your invoice is attached.\r\n"
)


def rich(subject: str = "Quarterly report") -> bytes:
    """HTML with an inline image (cid:), a text alternative and a CSV attachment."""
    image = base64.encodebytes(PNG).replace(b"\n", b"\r\n")
    return (
        b"From: Reports <reports@example.org>\r\nTo: Sam <sam@example.net>\r\n"
        b"Subject: " + subject.encode() + b"\r\nMessage-ID: <q3@example.org>\r\n"
        b"X-Custom-Header: console\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="mixed"\r\n\r\n'
        b"--mixed\r\n"
        b'Content-Type: multipart/related; boundary="related"\r\n\r\n'
        b"--related\r\n"
        b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"The figures are in the attachment.\r\n"
        b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<html><body><h1 id="greeting">Figures inside</h1>'
        b'<img id="logo" src="cid:logo@example.org" alt="logo"></body></html>\r\n'
        b"--alt--\r\n"
        b"--related\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-ID: <logo@example.org>\r\nContent-Disposition: inline\r\n\r\n"
        + image
        + b"--related--\r\n"
        b"--mixed\r\nContent-Type: text/csv\r\n"
        b'Content-Disposition: attachment; filename="figures.csv"\r\n\r\n'
        b"quarter,total\r\nQ3,42\r\n"
        b"--mixed--\r\n"
    )


def hostile(remote: str) -> bytes:
    """HTML that tries to run script and to load from `remote` in every way mail can."""
    html = (
        f'<html><head><meta http-equiv="refresh" content="0; url={remote}/refresh">'
        f'<link rel="stylesheet" href="{remote}/style.css">'
        f"<style>@import url({remote}/import.css); body {{ background: url({remote}/bg.png) }}</style>"
        f'<script>window.parent.document.title = "owned"; alert("script")</script>'
        f'<script src="{remote}/script.js"></script></head>'
        f'<body><p id="bait">Hello</p><img id="remote" src="{remote}/pixel.png" alt="pixel">'
        f'<img src="x" onerror="alert(\'onerror\')" alt="broken">'
        f'<iframe src="{remote}/frame.html"></iframe>'
        f"<svg onload=\"alert('svg')\"></svg></body></html>"
    ).encode()
    return (
        b"From: Mallory <mallory@example.org>\r\nTo: <victim@example.net>\r\n"
        b"Subject: <script>alert('subject')</script> hostile\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html + b"\r\n"
    )


class Recorder:
    """An HTTP server on 127.0.0.1 that answers every GET with a 1x1 image, or with the HTML
    page set for its path in `pages`, and records its path: stands for the remote servers a
    message's images and styles point at, and for another site's pages."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.pages: dict[str, str] = {}
        hits, pages = self.hits, self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                page = pages.get(self.path)
                kind, body = ("image/png", PNG) if page is None else ("text/html", page.encode())
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as running:
        yield running


def hold_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{folder / 'log.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.net",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayThread]:
    """A relay in hold mode with a plain and a rich message in its log (the rich one newest)."""
    with RelayThread(hold_env(tmp_path_factory.mktemp("console"))) as relay:
        relay.send("billing@example.org", ["alex@example.net"], PLAIN)
        relay.send("reports@example.org", ["sam@example.net", "kim@example.net"], rich())
        yield relay
