"""The whole relay in Graph mode, in-process, delivering to the Microsoft stand-in.

Everything is the real relay: SMTP listener, RCPT checks against the test DNS server, calendar
variants, durable queue, worker and the Graph transport built by `app.py` from the settings and
the environment (which carries SSL_CERT_FILE for the stand-in's CA).
"""

from __future__ import annotations

import re
from pathlib import Path

import aiosmtplib

from mxrelay.app import Relay
from tests.support.dns_server import DnsServer
from tests.support.graph_harness import PointsAtGraph, relay_environ
from tests.support.relay_app import BASE_ENV

QUEUED_AS = re.compile(r"queued as (\w+)")


def graph_relay_environ(
    standin: PointsAtGraph, dns: DnsServer, directory: Path, **extra: str
) -> dict[str, str]:
    """Graph mode against `standin`, RCPT checks against `dns`, the store in `directory`;
    quick polls and probes so that a test waits tenths of seconds, not minutes."""
    settings = {
        **BASE_ENV,
        "MXRELAY_DNS_SERVERS": dns.address,
        "MXRELAY_DATABASE_URL": f"sqlite:///{directory / 'mxrelay.db'}",
        "MXRELAY_QUEUE_POLL_INTERVAL": "50ms",
        "MXRELAY_DELIVERY_PROBE_INTERVAL": "200ms",
        "MXRELAY_RETRY_INITIAL": "200ms",
        "MXRELAY_RETRY_MAX": "1s",
        "MXRELAY_STORE_COMMIT_WINDOW": "0s",
        "MXRELAY_LOG_LEVEL": "warning",
    }
    settings.update(extra)
    return relay_environ(standin, **settings)


def crlf(text: str) -> bytes:
    """A message written with \\n line ends, as it goes over SMTP (CRLF, UTF-8)."""
    return text.replace("\n", "\r\n").encode("utf-8")


async def submit(
    relay: Relay, sender: str, recipients: list[str], data: bytes
) -> tuple[str, dict[str, tuple[int, str]]]:
    """One SMTP transaction: the stored message id and the recipients refused at RCPT."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port, timeout=30) as client:
        refused, reply = await client.sendmail(sender, recipients, data)
    match = QUEUED_AS.search(reply)
    assert match, reply
    return match.group(1), {k: (v.code, v.message) for k, v in refused.items()}
