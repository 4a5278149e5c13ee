"""Parsing bombs in Graph mode against `mxrelay serve` and the HTTPS stand-in for Microsoft Graph.

The header From decides the sending mailbox and, with MXRELAY_GRAPH_ALLOWED_SENDERS, whether the
message is accepted at all. A From that costs gigabytes or a RecursionError to parse must cost
neither at the end of DATA (where it is refused: a From the relay cannot read is on no list) nor
at any delivery attempt (where the From read once at accept time is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import aiosmtplib
import pytest

from tests.support.graph_harness import relay_environ
from tests.support.graph_standin import MAILBOX, GraphStandIn, unavailable
from tests.support.graph_standin_mail import Answer
from tests.support.hostile import BOMBS, watch
from tests.support.processes import ServeProcess

FROM_BOMBS = ["encoded words in From (140 KiB)", "five thousand nested comments in From"]
pytestmark = pytest.mark.slow
QUEUED_AS = re.compile(r"queued as (\w+)")
ATTEMPTS = 3
"""Delivery attempts watched: every one of them read the From again in earlier versions."""


def graph_env(standin: GraphStandIn, directory: Path, **extra: str) -> dict[str, str]:
    return relay_environ(
        standin,
        MXRELAY_DATABASE_URL=f"sqlite:///{directory / 'relay.db'}",
        MXRELAY_DNS_TRUSTED_DOMAINS="example.org",
        MXRELAY_QUEUE_POLL_INTERVAL="50ms",
        MXRELAY_RETRY_INITIAL="100ms",
        MXRELAY_RETRY_MAX="300ms",
        MXRELAY_STORE_COMMIT_WINDOW="0s",
        MXRELAY_GRAPH_MAX_MESSAGE_SIZE="0",
        MXRELAY_LOG_LEVEL="warning",
        **extra,
    )


async def send(port: int, data: bytes) -> str:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as client:
        try:
            _, reply = await client.sendmail(MAILBOX, ["user@example.org"], data)
        except aiosmtplib.SMTPResponseException as exc:
            return f"{exc.code} {exc.message}"
    return f"250 {reply}"


async def requests_for(standin: GraphStandIn, count: int, within: float = 60.0) -> int:
    """Wait until the stand-in has had `count` sendMail requests; how many it had."""
    with contextlib.suppress(TimeoutError):
        await asyncio.to_thread(
            standin.wait_for, lambda: len(standin.send_requests()) >= count, within
        )
    return len(standin.send_requests())


@pytest.mark.parametrize("bomb", FROM_BOMBS)
async def test_each_attempt_reuses_the_from_read_at_accept_time(
    standin: GraphStandIn, tmp_path: Path, bomb: str
) -> None:
    # The stand-in answers before it reads the MIME (as a busy Graph would), then refuses for
    # good, so that the message is given up and the test process never parses the bomb itself.
    standin.script(
        *[unavailable()] * (ATTEMPTS - 1), Answer(400, "ErrorInvalidRecipients", "no recipients")
    )
    relay = await ServeProcess.start(graph_env(standin, tmp_path), tmp_path / "relay.log")
    try:
        # No ordinary message beside it: it would take one of the scripted answers.
        accepted = await watch(send(relay.smtp_port, BOMBS[bomb]), relay, sender=None)
        assert str(accepted.result).startswith("250 "), accepted
        delivering = await watch(requests_for(standin, ATTEMPTS), relay, sender=None)
        assert delivering.result == ATTEMPTS, relay.log[-2000:]  # each attempt reached Graph
        mailboxes = {request.path.split("/")[3] for request in standin.send_requests()}
        assert mailboxes == {MAILBOX}  # an unreadable From: the envelope sender's mailbox
    finally:
        relay.close()


@pytest.mark.parametrize("bomb", FROM_BOMBS)
async def test_the_allow_list_refuses_an_unreadable_from_at_data(
    standin: GraphStandIn, tmp_path: Path, bomb: str
) -> None:
    env = graph_env(standin, tmp_path, MXRELAY_GRAPH_ALLOWED_SENDERS=MAILBOX)
    relay = await ServeProcess.start(env, tmp_path / "relay.log")
    try:
        # An allowed sender's message beside it gets its 250.
        refused = await watch(send(relay.smtp_port, BOMBS[bomb]), relay, sender=MAILBOX)
        assert str(refused.result).startswith("550 5.7.1"), refused
        sent = await standin.arrived(1)  # the ordinary message, delivered
        assert [message.from_address for message in sent] == [MAILBOX]
    finally:
        relay.close()
