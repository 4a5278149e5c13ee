"""A scriptable SMTP server for delivery and passthrough tests: aiosmtpd on 127.0.0.1, port 0, in
the test's loop; the smarthost of queued delivery and the upstream of passthrough mode.

It records every message it accepts (envelope, MAIL parameters and bytes) and answers as scripted:
a reply to MAIL, a reply per recipient at RCPT, a reply to the end of DATA, no answer at all to the
end of DATA (`hang_data`, until it stops), or no service at all (`stop()`, then `start()` again on
the same port, for "smarthost down for a while").
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    queue_id: str
    mail_options: tuple[str, ...] = ()


@dataclass
class Script:
    mail: str | None = None
    """Reply to MAIL instead of "250 2.1.0 Ok"."""
    hang_data: bool = False
    """Never answer the end of DATA (until the server stops)."""
    rcpt: dict[str, str] = field(default_factory=dict)
    """Recipient → reply line (e.g. "450 4.2.1 Mailbox busy"); others get 250."""
    data: str | None = None
    """Reply to the end of DATA instead of "250 2.0.0 Ok: queued as <id>"."""


class _Handler:
    def __init__(self, host: Smarthost) -> None:
        self.host = host

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.host.script.mail is not None:
            return self.host.script.mail
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.host.script.rcpt.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.host.delay:
            await asyncio.sleep(self.host.delay)  # a slow smarthost (its behaviour, not a wait)
        if self.host.script.hang_data:
            self.host.hanging += 1
            await self.host.stopping.wait()
            return "421 4.3.2 Shutting down"
        if self.host.script.data is not None:
            return self.host.script.data
        queue_id = f"Q{next(self.host.ids)}"
        content = envelope.original_content or b""
        self.host.record(
            Received(
                envelope.mail_from or "",
                tuple(envelope.rcpt_tos),
                content,
                queue_id,
                tuple(envelope.mail_options),
            )
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


class Smarthost:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.script = Script()
        self.received: list[Received] = []
        self.ids = itertools.count(1)
        self.connections = 0
        self.hanging = 0
        """Ends of DATA received and never answered (`script.hang_data`)."""
        self.delay = 0.0
        """Seconds the smarthost takes to answer the end of DATA."""
        self._changed = asyncio.Event()
        self.stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def record(self, message: Received) -> None:
        self.received.append(message)
        self._changed.set()

    def _protocol(self) -> SMTP:
        self.connections += 1
        protocol = SMTP(
            _Handler(self),
            hostname="smarthost.example.net",
            decode_data=False,
            enable_SMTPUTF8=True,
        )
        self._sessions.append(protocol)
        return protocol

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.stopping.clear()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.close()
            for session in self._sessions:  # drop open connections too (a smarthost going down)
                if session.transport is not None:
                    session.transport.close()
            self._sessions.clear()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Wait until `count` messages have arrived (at most `within` seconds)."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.received

    def delivered_to(self) -> list[str]:
        return [r for message in self.received for r in message.recipients]


@pytest.fixture
async def smarthost() -> AsyncIterator[Smarthost]:
    host = Smarthost()
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
