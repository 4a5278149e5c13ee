"""The SMTP protocol engine's listener: admission, connection counts and the drain at shutdown.

The engine owns the grammar and the order of commands; every decision (who may connect, which
sender and recipients are acceptable, what becomes of the message) is a `SessionPolicy` hook
(`hooks.py`) that returns a `Reply`. It is an `asyncio.Protocol` with one coroutine per connection
rather than aiosmtpd, which spends more than twice the CPU per message under the same load
(`python -m bench smtp_engine` measures both side by side; bench/README.md). Each connection's
state machine is in `connection.py`; bare LF/CR, SMTP smuggling and the STARTTLS command-injection
flaw (CVE-2011-0411) are handled there, in one place.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

from mxrelay.metrics import Metrics
from mxrelay.model import Reply
from mxrelay.smtp import replies
from mxrelay.smtp.auth import SmtpAuth
from mxrelay.smtp.channel import LineChannel
from mxrelay.smtp.connection import SmtpConnection
from mxrelay.smtp.hooks import ClientConnection, SessionPolicy, SmtpLimits
from mxrelay.smtp.memory import DataBudget


class SmtpServer:
    """Listens, counts connections, and drains them on shutdown."""

    def __init__(
        self,
        *,
        hostname: str,
        limits: SmtpLimits,
        policy: SessionPolicy,
        metrics: Metrics,
        tls_context: ssl.SSLContext | None = None,
        auth_enabled: bool = False,
        auth_allow_plaintext: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hostname = hostname
        self.limits = limits
        self.policy = policy
        self.metrics = metrics
        self.tls_context = tls_context
        self.clock = clock
        self.data_budget = DataBudget(limits.data_memory, metrics)
        self.auth = SmtpAuth(
            enabled=auth_enabled,
            allow_plaintext=auth_allow_plaintext,
            failure_limit=limits.auth_failures,
            verify=policy.authenticate,
            metrics=metrics,
            clock=clock,
        )
        self.shutting_down = False
        self._server: asyncio.Server | None = None
        self._connections: set[ClientConnection] = set()
        self._per_client: dict[str, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: LineChannel(self._session), host, port, reuse_address=True, backlog=1024
        )

    def _session(self, channel: LineChannel) -> Coroutine[Any, Any, None]:
        """The coroutine that runs a new connection's session."""
        return SmtpConnection(self, channel).run()

    @property
    def sockets(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    # -- bookkeeping used by connections ------------------------------------------------------

    def admit(self, connection: ClientConnection) -> Reply | None:
        """Count a new connection; a reply when it must be turned away for a limit."""
        host = connection.peer.host
        if self.shutting_down:
            return replies.SERVICE_SHUTTING_DOWN
        if len(self._connections) >= self.limits.connections:
            return replies.TOO_MANY_CONNECTIONS
        if self._per_client.get(host, 0) >= self.limits.connections_per_client:
            return replies.TOO_MANY_CONNECTIONS_FROM_YOU
        self._connections.add(connection)
        self._per_client[host] = self._per_client.get(host, 0) + 1
        self._idle.clear()
        return None

    def release(self, connection: ClientConnection) -> None:
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        host = connection.peer.host
        remaining = self._per_client.get(host, 1) - 1
        if remaining:
            self._per_client[host] = remaining
        else:
            self._per_client.pop(host, None)
        if not self._connections:
            self._idle.set()

    # -- shutdown ------------------------------------------------------------------------------

    async def stop(self, grace: float) -> None:
        """Stop accepting; let transactions in flight finish within `grace`; then close the rest."""
        self.shutting_down = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.request_shutdown()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        except TimeoutError:
            for connection in list(self._connections):
                connection.abort()
            await asyncio.wait_for(self._idle.wait(), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
