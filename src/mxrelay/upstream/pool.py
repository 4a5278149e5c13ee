"""The relay as an SMTP client: a small pool of connections to the one upstream server.

Passthrough (`sinks/passthrough.py`) and the smarthost transport (`delivery/smarthost/`) both take
their connections here: opened with the configured TLS, credentials and timeouts, kept idle for
reuse up to `MXRELAY_UPSTREAM_IDLE_CONNECTIONS` and `MXRELAY_UPSTREAM_IDLE_TIMEOUT` (Postfix's
connection cache), and closed with a QUIT in the background. What to send on them is the callers'.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib

from mxrelay import log
from mxrelay.config import UpstreamSettings, UpstreamUrl
from mxrelay.metrics import Metrics, UpstreamCommand, UpstreamConnection
from mxrelay.upstream.errors import UpstreamError, map_upstream_errors

logger = logging.getLogger("mxrelay.passthrough")  # the name log filters know from before


@dataclass(slots=True)
class _Pooled:
    client: aiosmtplib.SMTP
    idle_since: float


class UpstreamPool:
    """Open, reuse and close connections to one upstream SMTP server."""

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        local_hostname: str,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        assert settings.url is not None
        self.url: UpstreamUrl = settings.url
        self.settings = settings
        self.local_hostname = local_hostname
        self.metrics = metrics
        self.clock = clock
        self.tls_context = tls_context or ssl.create_default_context()
        self._idle: list[_Pooled] = []
        self._closing: set[asyncio.Task[None]] = set()

    async def acquire(self) -> aiosmtplib.SMTP:
        """An idle connection still fresh, or a new one; `UpstreamError` when none can be opened."""
        now = self.clock()
        idle_limit = self.settings.idle_timeout.total_seconds()
        while self._idle:
            pooled = self._idle.pop()
            if now - pooled.idle_since <= idle_limit and pooled.client.is_connected:
                self.metrics.upstream_connections.labels(result=UpstreamConnection.REUSED).inc()
                return pooled.client
            self._discard(pooled.client)
        return await self._connect()

    async def _connect(self) -> aiosmtplib.SMTP:
        url = self.url
        password = self.settings.password.get_secret_value() if self.settings.password else None
        client = aiosmtplib.SMTP(
            hostname=url.host,
            port=url.port,
            local_hostname=self.local_hostname,
            timeout=self.settings.command_timeout.total_seconds(),
            use_tls=url.scheme == "smtps",
            start_tls={"opportunistic": None, "required": True, "off": False}[url.starttls],
            tls_context=self.tls_context,
            username=self.settings.username,
            password=password,
        )
        started = self.clock()
        try:
            with map_upstream_errors():
                await client.connect(timeout=self.settings.connect_timeout.total_seconds())
        except UpstreamError as exc:
            self.metrics.upstream_connections.labels(result=UpstreamConnection.FAILED).inc()
            log.event(
                logger,
                "upstream connection failed",
                logging.WARNING,
                upstream=f"{url.host}:{url.port}",
                error=str(exc),
            )
            raise
        self.metrics.upstream_latency.labels(command=UpstreamCommand.CONNECT).observe(
            self.clock() - started
        )
        self.metrics.upstream_connections.labels(result=UpstreamConnection.OPENED).inc()
        return client

    def release(self, client: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if reusable and client.is_connected and len(self._idle) < self.settings.idle_connections:
            self._idle.append(_Pooled(client, self.clock()))
        else:
            self._discard(client)

    def _discard(self, client: aiosmtplib.SMTP) -> None:
        if not client.is_connected:
            return
        task = asyncio.get_running_loop().create_task(_quit(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        while self._idle:
            self._discard(self._idle.pop().client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        with map_upstream_errors():
            await client.quit(timeout=2)
    except UpstreamError:
        client.close()
