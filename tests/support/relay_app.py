"""The whole relay (`mxrelay.app.Relay`) in-process, configured from an environment mapping.

SMTP and metrics listen on free loopback ports; the DNS settings point at the test DNS server.
The same mapping is the relay's environment (what Graph mode reads: SSL_CERT_FILE, a proxy).
A queued relay's entries are read as `mxrelay queue show` reads them, and waited for by state.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mxrelay.app import Relay
from mxrelay.config import load_settings
from mxrelay.log import FIELDS_ATTR
from mxrelay.model import QueueState
from mxrelay.store.queue.admin import QueueAdmin
from mxrelay.store.queue.entries import QueueEntry
from tests.support.polling import until

ROUTABLE_FOR_TESTS = "192.0.2.0/24,198.51.100.0/24,203.0.113.0/24,2001:db8::/32"

BASE_ENV = {
    "MXRELAY_SMTP_LISTEN": "127.0.0.1:0",
    "MXRELAY_METRICS_LISTEN": "127.0.0.1:0",
    "MXRELAY_HTTP_LISTEN": "127.0.0.1:0",
    "MXRELAY_HOSTNAME": "relay.example.net",
    "MXRELAY_DNS_ROUTABLE_NETWORKS": ROUTABLE_FOR_TESTS,
    "MXRELAY_DNS_QUERY_TIMEOUT": "1s",
    "MXRELAY_DNS_RCPT_TIMEOUT": "2s",
    "MXRELAY_SHUTDOWN_TIMEOUT": "5s",
}


@asynccontextmanager
async def running_relay(
    env: Mapping[str, str], *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[Relay]:
    environ = {**BASE_ENV, **env}
    settings = load_settings(environ, hostname=lambda: "relay.example.net")
    async with Relay(settings, environ=environ, clock=clock) as relay:
        yield relay


@asynccontextmanager
async def relay_holding(
    dns_address: str, database: Path, sent: Iterable[tuple[str, Sequence[str], bytes]]
) -> AsyncIterator[Relay]:
    """A relay in hold mode on a SQLite store at `database` (the DNS server at `dns_address`
    answers for the recipients' domains) that has received each (sender, recipients, data) of
    `sent` over SMTP, in one session."""
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{database}",
        "MXRELAY_DNS_SERVERS": dns_address,
    }
    async with running_relay(env) as relay:

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
                for sender, recipients, data in sent:
                    client.sendmail(sender, list(recipients), data)

        await asyncio.to_thread(send)
        yield relay


async def send_mail(relay: Relay, sender: str, recipients: Sequence[str], data: bytes) -> None:
    """One message through the relay's SMTP port (smtplib, off the event loop)."""

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
            client.sendmail(sender, list(recipients), data)

    await asyncio.to_thread(send)


def transaction_lines(records: Iterable[logging.LogRecord]) -> list[Mapping[str, Any]]:
    """The fields of each transaction log line among `records` (pytest's caplog, with the
    `mxrelay.smtp` logger at INFO)."""
    return [getattr(r, FIELDS_ATTR) for r in records if r.getMessage() == "transaction"]


async def queue_entry(relay: Relay, key: str) -> QueueEntry:
    """The queue entry of message `key` in a running relay of a queued mode."""
    assert relay.queue_stage is not None
    assert relay.queue_stage.queue is not None
    found = await QueueAdmin(relay.queue_stage.queue.db).get(key)
    assert found is not None, key
    return found


async def entry_in_state(
    relay: Relay,
    key: str,
    state: QueueState,
    *,
    where: Callable[[QueueEntry], bool] = lambda entry: True,
    within: float = 15.0,
) -> QueueEntry:
    """The queue entry of message `key` once it is in `state` (and `where` holds of it)."""
    seen: list[QueueEntry] = []

    async def reached() -> QueueEntry | None:
        seen.append(await queue_entry(relay, key))
        return seen[-1] if seen[-1].state is state and where(seen[-1]) else None

    def what() -> str:
        last = f"{seen[-1].state.value}, {seen[-1].attempts} attempts" if seen else "never read"
        return f"message {key} {state.value} (last seen: {last})"

    return await until(reached, what=what, within=within)
