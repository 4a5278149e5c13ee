"""One `sendMail` request over HTTPS, and its answer as a `GraphAnswer`.

The HTTP client (httpx, with the relay's CA trust and outbound proxy), the time a request of a given
size may take (`MXRELAY_GRAPH_TIMEOUT` plus `MXRELAY_GRAPH_TIMEOUT_PER_MIB`), the request metrics,
and the translation of httpx's errors into `UpstreamUnavailable`: here and nowhere else. What an
answer means is `outcome.py`'s; when to send is the transport's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import httpx

from mxrelay.config import GraphSettings
from mxrelay.delivery.errors import UpstreamUnavailable
from mxrelay.delivery.graph.auth import AccessToken
from mxrelay.delivery.graph.credentials import TlsTrust
from mxrelay.delivery.graph.outcome import GraphAnswer, parse_error_body, parse_retry_after
from mxrelay.delivery.graph.proxy import OutboundProxy
from mxrelay.metrics import GraphStatusClass, Metrics
from mxrelay.model import utc_now

MIB = 1024 * 1024


class SendMailClient:
    """POSTs base64 MIME to `/users/{mailbox}/sendMail`; `aclose()` closes its connections."""

    def __init__(
        self,
        graph: GraphSettings,
        *,
        trust: TlsTrust | None = None,
        proxy: OutboundProxy | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._graph = graph
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._new_request_id = new_request_id
        self.base = graph.endpoint.rstrip("/")
        connections = graph.concurrency or 100
        context = (trust or TlsTrust()).ssl_context()
        via = (proxy or OutboundProxy()).route(self.base).proxy  # the same decision as MSAL's
        self._client = httpx.AsyncClient(
            verify=context,
            proxy=httpx.Proxy(via.url, ssl_context=context if via.tls else None) if via else None,
            trust_env=False,  # the environment is injected (SSL_CERT_FILE, HTTPS_PROXY, NO_PROXY)
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def request_time(self, size: int) -> float:
        """The longest a sendMail request of `size` bytes may take."""
        graph = self._graph
        return graph.timeout.total_seconds() + graph.timeout_per_mib.total_seconds() * size / MIB

    async def send(self, mailbox: str, body: bytes, token: AccessToken) -> GraphAnswer:
        """Graph's answer to one request; `UpstreamUnavailable` when none came."""
        total = self.request_time(len(body))
        url = f"{self.base}/v1.0/users/{quote(mailbox, safe='@')}/sendMail"
        headers = {
            "Authorization": f"Bearer {token.value}",
            "Content-Type": "text/plain",
            "client-request-id": self._new_request_id(),
            "return-client-request-id": "true",
        }
        timeout = httpx.Timeout(total, connect=self._graph.connect_timeout.total_seconds())
        started = self._clock()
        try:
            async with asyncio.timeout(total):
                response = await self._client.post(
                    url, content=body, headers=headers, timeout=timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            self._count(GraphStatusClass.TIMEOUT, started)
            raise UpstreamUnavailable(
                f"Graph did not answer within {total:.0f}s; it may have accepted the message "
                "(a retry keeps the same Message-ID)"
            ) from None
        except httpx.ConnectError as exc:
            self._count(GraphStatusClass.NETWORK, started)
            raise UpstreamUnavailable(
                f"cannot connect to Graph at {self.base} ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            self._count(GraphStatusClass.NETWORK, started)
            raise UpstreamUnavailable(
                f"the connection to Graph failed before an answer ({type(exc).__name__}); it "
                "may have accepted the message (a retry keeps the same Message-ID)"
            ) from None
        self._count(GraphStatusClass.of(response.status_code), started, len(body))
        code, message = (None, "") if response.is_success else parse_error_body(response.content)
        return GraphAnswer(
            response.status_code,
            code,
            message,
            response.headers.get("request-id"),
            parse_retry_after(response.headers.get("retry-after"), self._wall()),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _count(self, status_class: GraphStatusClass, started: float, size: int = 0) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.graph_requests.labels(status_class=status_class).inc()
        metrics.graph_request_latency.observe(max(self._clock() - started, 0.0))
        if size:
            metrics.graph_upload_bytes.inc(size)
