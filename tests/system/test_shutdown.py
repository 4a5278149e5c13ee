"""SIGTERM with an SMTP transaction and a delivery both in progress: `mxrelay serve` (smtp mode,
from its delivery process or in-process, SQLite) exits within MXRELAY_SHUTDOWN_TIMEOUT, the one deadline the pod's
terminationGracePeriodSeconds is derived from, and the message it was delivering stays queued."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiosmtplib
import pytest

from tests.support.polling import until
from tests.support.processes import ServeProcess, run_mxrelay
from tests.support.smarthost import Smarthost

SHUTDOWN_TIMEOUT = 4.0
EXIT_ALLOWANCE = 1.0
"""Seconds past the deadline allowed for the interpreter to exit after the relay has stopped."""

MESSAGE = b"From: app@example.net\r\nTo: user@example.org\r\nSubject: slow\r\n\r\nbody\r\n"


@pytest.mark.slow
@pytest.mark.parametrize("delivery_process", ["true", "false"])
async def test_sigterm_during_a_slow_delivery_and_a_slow_client_stops_within_the_deadline(
    smarthost: Smarthost, workdir: Path, delivery_process: str
) -> None:
    smarthost.script.hang_data = True  # the delivery never gets its answer to DATA
    env = {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_UPSTREAM": smarthost.url,
        "MXRELAY_DATABASE_URL": f"sqlite:///{workdir / 'relay.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.org",
        "MXRELAY_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT:g}s",
        "MXRELAY_DELIVERY_PROCESS": delivery_process,
    }
    relay = await ServeProcess.start(env, workdir / "relay.log")
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port, timeout=30)
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port) as sender:
            await sender.sendmail("app@example.net", ["user@example.org"], MESSAGE)
        # The delivery has sent its DATA and waits for the answer.
        await until(lambda: smarthost.hanging >= 1, within=20)
        # A second client is in the middle of its transaction, and stays there.
        await client.connect()
        await client.ehlo()
        await client.mail("app@example.net")
        await client.rcpt("user@example.org")
        await client.execute_command(b"DATA")

        started = time.monotonic()
        status = await asyncio.to_thread(relay.terminate, 30)
        elapsed = time.monotonic() - started
    finally:
        client.close()
        relay.close()
    assert status == 0, relay.log
    assert elapsed < SHUTDOWN_TIMEOUT + EXIT_ALLOWANCE, f"stopped after {elapsed:.1f}s\n{relay.log}"
    assert not smarthost.received
    listing = await asyncio.to_thread(run_mxrelay, "queue", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "user@example.org" in listing.stdout, "the message it was delivering is still queued"
