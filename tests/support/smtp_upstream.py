"""A real upstream SMTP server (aiosmtpd) on 127.0.0.1 that records transactions and replies as
scripted: per-recipient RCPT replies, a MAIL reply, a DATA reply, or hanging at DATA.

It runs on its own event loop thread, so blocking clients, the relay under test (in-process, on
another loop) and the test itself can all talk to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    mail_options: tuple[str, ...]
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class Script:
    mail_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    hang_data: bool = False


class _Handler:
    def __init__(self, upstream: SmtpUpstream) -> None:
        self.upstream = upstream

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.upstream.script.mail_reply
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.upstream.script.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        script = self.upstream.script
        if script.hang_data:
            await self.upstream.release.wait()
            return "451 4.3.0 released"
        if script.data_reply is not None:
            return script.data_reply
        content = envelope.original_content or b""
        self.upstream.received.append(
            Received(
                mail_from=envelope.mail_from or "",
                mail_options=tuple(envelope.mail_options),
                recipients=tuple(envelope.rcpt_tos),
                data=content,
            )
        )
        return f"250 2.0.0 Ok: queued as UP{len(self.upstream.received)}"


class SmtpUpstream:
    """Start with `start()`, stop with `stop()`; `port` is known once started."""

    def __init__(self, *, smtputf8: bool = True) -> None:
        self.script = Script()
        self.received: list[Received] = []
        self.connections = 0
        self.smtputf8 = smtputf8
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0
        self.release = asyncio.Event()

    def _factory(self) -> SMTP:
        self.connections += 1
        return SMTP(
            _Handler(self),
            hostname="upstream.example.org",
            enable_SMTPUTF8=self.smtputf8,
            decode_data=False,
        )

    def start(self) -> SmtpUpstream:
        self._thread.start()
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        future.result(10)
        return self

    async def _start(self) -> None:
        self.release = asyncio.Event()
        self._server = await self.loop.create_server(self._factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shutdown() -> None:
            self.release.set()
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        pending = asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop)
        pending.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def smtp_upstream() -> Iterator[SmtpUpstream]:
    upstream = SmtpUpstream().start()
    yield upstream
    upstream.stop()


__all__: list[Any] = ["Received", "SmtpUpstream", "smtp_upstream"]
