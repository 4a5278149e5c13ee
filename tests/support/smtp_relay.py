"""An SMTP engine with the relay policy, running on its own event loop thread on 127.0.0.1.

Tests drive it with real clients (smtplib, aiosmtplib, swaks, and `Wire`, a raw socket that reads
whole replies; `dialogue` plays a table of commands and replies). The recipient check is
scripted per domain (the DNS layer is tested against a real DNS server in tests/dns); the sink
records what it is given, or forwards to a real upstream when a test supplies one.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvloop

from mxrelay.config import SmtpSettings
from mxrelay.metrics import Metrics
from mxrelay.model import (
    MailParams,
    Reason,
    RecipientVerdict,
    RefusedRecipient,
    Reply,
    SessionInfo,
    Transaction,
)
from mxrelay.passwords import UserTable
from mxrelay.smtp.hooks import SmtpLimits
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.smtp.server import SmtpServer
from mxrelay.smtp.sink import Sink, SinkTransaction

T = TypeVar("T")

ACCEPT = Reply(250, "1.5", "Ok")
QUEUED = Reply(250, "0.0", "Ok: queued as TEST")


def scripted_verdict(path: str, replies: Mapping[str, Reply]) -> RecipientVerdict:
    """Verdict by the domain of `path`: the scripted reply, else 250."""
    mailbox = path.strip("<>")
    domain = mailbox.rpartition("@")[2].lower()
    reply = replies.get(domain, ACCEPT)
    reason = (
        Reason.OK
        if reply.is_positive
        else Reason.TEMPFAIL
        if reply.is_transient
        else Reason.NXDOMAIN
    )
    return RecipientVerdict(reply=reply, reason=reason, mailbox=mailbox, domain=domain)


@dataclass
class ScriptedCheck:
    replies: dict[str, Reply] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    async def __call__(self, path: str, smtputf8: bool) -> RecipientVerdict:
        self.seen.append(path)
        domain = path.strip("<>").rpartition("@")[2].lower()
        if domain in self.delays:
            await asyncio.sleep(self.delays[domain])
        return scripted_verdict(path, self.replies)


@dataclass
class RecordingSink:
    """Keeps every finished transaction (answered QUEUED), every refusal, and counts aborts."""

    transactions: list[Transaction] = field(default_factory=list)
    refusals: list[RefusedRecipient] = field(default_factory=list)
    aborted: int = 0

    def begin(self, session: SessionInfo, mail_from: str, params: MailParams) -> SinkTransaction:
        return _RecordingTransaction(self)

    async def record_refusal(
        self, session: SessionInfo, mail_from: str, refused: RefusedRecipient
    ) -> None:
        self.refusals.append(refused)


@dataclass
class _RecordingTransaction:
    sink: RecordingSink

    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        return ACCEPT

    async def finish(self, transaction: Transaction) -> Reply:
        self.sink.transactions.append(transaction)
        return QUEUED

    async def abort(self) -> None:
        self.sink.aborted += 1


class RelayThread:
    """Runs an `SmtpServer` + `RelayPolicy` on a private event loop in a daemon thread."""

    def __init__(
        self,
        *,
        settings: SmtpSettings | None = None,
        check: Callable[[str, bool], Awaitable[RecipientVerdict]] | None = None,
        sink: Sink | None = None,
        tls_context: ssl.SSLContext | None = None,
        users: UserTable | None = None,
        hostname: str = "relay.example.net",
    ) -> None:
        self.settings = settings or smtp_settings()
        self.check = check or ScriptedCheck()
        self.sink = sink or RecordingSink()
        self.metrics = Metrics()
        self.tls_context = tls_context
        self.users = users
        self.hostname = hostname
        # The production event loop (uvloop), so its transports and start_tls are what is tested.
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: SmtpServer | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def start(self) -> RelayThread:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        policy = RelayPolicy(
            allowed_clients=self.settings.allowed_clients,
            check=self.check,
            sink=self.sink,
            metrics=self.metrics,
            users=self.users,
            auth_required=self.settings.auth_required,
            refusal_log_limit=self.settings.refusal_log_limit,
        )
        self.server = SmtpServer(
            hostname=self.hostname,
            limits=SmtpLimits.from_settings(self.settings),
            policy=policy,
            metrics=self.metrics,
            tls_context=self.tls_context,
            auth_enabled=self.users is not None,
            auth_allow_plaintext=self.settings.auth_allow_plaintext,
        )
        await self.server.start("127.0.0.1", 0)
        self.host, self.port = self.server.sockets[0]

    def stop(self, grace: float = 5.0) -> None:
        if self.server is not None:
            self.call(self.server.stop(grace), timeout=grace + 10)
        if self.users is not None:
            self.users.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


RelayFactory = Callable[..., RelayThread]
"""The `make_relay` fixture (tests/smtp): starts a `RelayThread` with these keyword arguments."""


class Wire:
    """A raw SMTP client: send lines, read whole replies (multi-line included)."""

    def __init__(self, relay: RelayThread, timeout: float = 10, source: str | None = None) -> None:
        """`source`: the loopback address to connect from (all of 127.0.0.0/8 is local)."""
        self.sock = socket.create_connection(
            (relay.host, relay.port),
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        self.file = self.sock.makefile("rb")

    def read(self) -> str:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line.decode().rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.read()

    def closed(self) -> bool:
        return self.file.readline() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def dialogue(relay: RelayThread, steps: list[tuple[str, str]]) -> None:
    wire = Wire(relay)
    try:
        assert wire.read().startswith("220 relay.example.net ESMTP")
        for command, expected in steps:
            answer = wire.command(command)
            assert answer.splitlines()[-1].startswith(expected), (command, answer)
    finally:
        wire.close()


def smtp_settings(**overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {"listen": "127.0.0.1:0"}
    values.update(overrides)
    return SmtpSettings.model_validate(values)


__all__ = [
    "ACCEPT",
    "RecordingSink",
    "RelayFactory",
    "RelayThread",
    "ScriptedCheck",
    "Wire",
    "dialogue",
    "smtp_settings",
]
