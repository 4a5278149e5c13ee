"""Fuzzing the accept path: arbitrary and hostile bytes as headers and MIME bodies, through the store.

In-process, each example goes the way an accepted message goes after DATA: the queued modes' sink
(`QueueStage` in hold mode on SQLite, with calendar stripping for every recipient, so the
transforms run), which plans the variants, builds the record (summary, hash, compressed body,
each variant's bytes) and commits it through the group committer; then the message is read back
as the API shows it, and the Graph transport's header steps (From, To/Cc/Bcc reconciliation) run
on it. Properties: no exception, a `250` (never a write failure), the stored bytes are the
message's, and bounded time (`EXAMPLE_BOUND` per example, far above what any example takes). One
more test sends such messages through `mxrelay serve` over SMTP.

The suite runs a few examples; `make fuzz` sets MXRELAY_FUZZ_EXAMPLES=200000 (see ACCEPT_EXAMPLES).
"""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import given, settings

from mxrelay.config import load_settings
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.mime.addresses import read_author
from mxrelay.mime.headers import reconcile_headers
from mxrelay.model import Peer, SessionInfo, Transaction
from mxrelay.runtime.queued import QueueStage
from mxrelay.store.message_log import get_message, get_raw
from mxrelay.web.api_v1.shapes import message
from tests.support.fuzzing import EXAMPLES, FUZZ, LARGE_EXAMPLES, messages
from tests.support.hostile import hold_relay
from tests.support.processes import ServeProcess

EXAMPLE_BOUND = 10.0
"""Seconds one example may take, end to end (milliseconds are usual; the parsing bombs of
earlier versions took from seconds to minutes)."""

RECIPIENTS = ("bob@example.org", "carol@example.net")
QUEUED_AS = re.compile(r"queued as (\w+)")

ACCEPT_EXAMPLES = max(100, EXAMPLES // 10)
SMTP_EXAMPLES = max(20, EXAMPLES // 100)
"""An example costs tens of milliseconds here (a commit each; over SMTP, a session too), against
a few for the transforms alone: a long run (`make fuzz`) takes a tenth and a hundredth of
MXRELAY_FUZZ_EXAMPLES, about as long as the transform fuzzing."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(max(300, ACCEPT_EXAMPLES // 5)),
    LARGE_EXAMPLES,
]

_T = TypeVar("_T")


class LoopThread:
    """An event loop in a thread, for Hypothesis tests (which are synchronous) to drive."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 60.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def accept_path(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LoopThread, QueueStage]]:
    directory = tmp_path_factory.mktemp("fuzz-accept")
    settings = load_settings(
        {
            "MXRELAY_DELIVERY": "hold",
            "MXRELAY_DATABASE_URL": f"sqlite:///{directory / 'store.db'}",
            "MXRELAY_STORE_COMMIT_WINDOW": "0s",
            "MXRELAY_STORE_SYNCHRONOUS": "normal",
            "MXRELAY_ICS_STRIP": "all",
        },
        hostname=lambda: "relay.example.net",
    )
    runner = LoopThread()
    stage = QueueStage(settings, metrics=Metrics(), health=Health(), transport=None)
    try:
        runner.run(stage.start())
        yield runner, stage
        runner.run(stage.aclose(5.0))
    finally:
        runner.close()


def transaction(data: bytes) -> Transaction:
    return Transaction(
        session=SessionInfo(Peer("127.0.0.1", 40000), helo="app.example.net", esmtp=True),
        mail_from="app@example.net",
        recipients=RECIPIENTS,
        data=data,
        received_at=datetime.now(UTC),
    )


async def accept_and_read(stage: QueueStage, data: bytes) -> tuple[str, bytes | None]:
    reply = await stage.sink.accept(transaction(data))
    assert reply.code == 250, reply  # a message's content must never fail a write
    found = QUEUED_AS.search(reply.text)
    assert found is not None
    assert stage.db is not None
    view = await get_message(stage.db, found.group(1))
    raw = await get_raw(stage.db, found.group(1))
    assert view is not None
    shown = await asyncio.to_thread(message, view, raw)  # the API's message view...
    json.dumps(shown, ensure_ascii=False).encode("utf-8")  # ...as its JSON response encodes it
    return found.group(1), raw


@settings(FUZZ, max_examples=ACCEPT_EXAMPLES)
@given(messages)
def test_fuzz_accept_path(accept_path: tuple[LoopThread, QueueStage], data: bytes) -> None:
    runner, stage = accept_path
    started = time.monotonic()
    _, raw = runner.run(accept_and_read(stage, data))
    assert raw == data
    read_author(data)
    reconcile_headers(data, RECIPIENTS)
    assert time.monotonic() - started < EXAMPLE_BOUND


def smtp_safe(data: bytes) -> bytes:
    """The message as an SMTP client must send it: CRLF line ends only (a bare CR or LF is
    refused, as SMTP smuggling defences require), ending in CRLF."""
    lines = re.split(rb"\r\n|\r|\n", data)
    text = b"\r\n".join(lines)
    return text if text.endswith(b"\r\n") else text + b"\r\n"


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, int]]:
    with hold_relay(tmp_path_factory.mktemp("fuzz-serve")) as running:
        yield running


@settings(FUZZ, max_examples=SMTP_EXAMPLES)
@given(messages)
def test_fuzz_accept_over_smtp(serving: tuple[ServeProcess, int], data: bytes) -> None:
    process, web_port = serving
    data = smtp_safe(data)
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", process.smtp_port, timeout=60) as client:
        client.ehlo("fuzz.example")
        client.mail("app@example.net")
        for recipient in RECIPIENTS:
            client.rcpt(recipient)
        code, text = client.data(data)
    assert code == 250, text
    found = QUEUED_AS.search(text.decode())
    assert found is not None
    base = f"http://127.0.0.1:{web_port}/api/v1/message/{found.group(1)}"
    assert httpx.get(base, timeout=60).status_code == 200
    assert httpx.get(base + "/raw", timeout=60).content == data
    assert time.monotonic() - started < EXAMPLE_BOUND
