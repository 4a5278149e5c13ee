"""The Microsoft Graph transport: one queued message variant → one `sendMail` request.

For every attempt the message is rebuilt from the stored bytes the worker hands over: To/Cc/Bcc
are made to name exactly the variant's accepted recipients (`mime.headers`, because Graph has no
envelope), a missing From, Date or Message-ID is added deterministically, and the result is
base64-encoded as Graph's MIME `sendMail` wants. So a retry sends exactly the same bytes as the
first attempt, and Exchange delivers to exactly the recipients mxrelay accepted.

Before any request the pacing lanes are asked (per sending mailbox, see pacing.py; kept in this
process, or in the store when replicas share it, see lanes.py); "not now" becomes
`Throttled(retry_after)` and costs no HTTP request. The answer is classified by outcome.py;
a 401 refreshes the token once and retries at once; 429 and 5xx-with-Retry-After close the whole
mailbox lane; configuration faults (AADSTS errors, 403 ErrorAccessDenied) set a metric and the
"graph" status condition (/healthz, never readiness: mail is held) and are logged in words, until
a send or `probe()` succeeds.
httpx, MSAL and network errors are translated here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx
from ulid import ULID

from mxrelay.config import Settings
from mxrelay.delivery.errors import (
    PermanentFailure,
    Throttled,
    ThrottledBeforeSending,
    UpstreamUnavailable,
)
from mxrelay.delivery.graph.auth import AccessToken, MsalTokenSource, TokenSource
from mxrelay.delivery.graph.credentials import TlsTrust
from mxrelay.delivery.graph.lanes import (
    STORE_RETRY,
    Lanes,
    LanesUnavailable,
    LocalLanes,
    SharedLanes,
)
from mxrelay.delivery.graph.outcome import (
    CONFIGURATION_FAULTS,
    Fault,
    GraphAnswer,
    GraphConfigurationFault,
    GraphVerdict,
    classify,
    parse_error_body,
    parse_retry_after,
    to_error,
)
from mxrelay.delivery.graph.pacing import Grant, Limit, Never, Pacer, PacingLimits, Wait
from mxrelay.delivery.graph.prepare import (
    MailboxSource,
    choose_mailbox,
    complete_headers,
    header_from,
    sender_allowed,
    stored_author,
)
from mxrelay.delivery.graph.proxy import OutboundProxy
from mxrelay.delivery.transport import (
    DeliveryJob,
    DeliveryOutcome,
    RecipientOutcome,
    RecipientStatus,
)
from mxrelay.health import Health
from mxrelay.log import event
from mxrelay.metrics import GRAPH_ERROR_CODES, Metrics
from mxrelay.mime.headers import HeaderPolicy, HeaderResult
from mxrelay.mime.pipeline import reconcile_headers_async, record_headers
from mxrelay.model import utc_now
from mxrelay.store.lanes import LaneStore

logger = logging.getLogger(__name__)

HEALTH_CONDITION = "graph"
SHORT_WAIT = 0.25
"""Pacing waits that end within this many seconds are waited out here instead of going back
to the queue (a trip through the queue costs more than that)."""
MIB = 1024 * 1024
LEASE_SLACK = 30.0
"""Seconds a pacing grant's lease outlasts the longest its request may take: it lapses (its
concurrency slot freed, its request counted as answered) only when this relay is gone."""


class GraphTransport:
    """`Transport` for `MXRELAY_DELIVERY=graph`. One instance per relay; it owns its HTTP client,
    token source and pacer, and closes them in `aclose()`."""

    name = "graph"

    def __init__(
        self,
        settings: Settings,
        *,
        tokens: TokenSource,
        trust: TlsTrust | None = None,
        proxy: OutboundProxy | None = None,
        metrics: Metrics | None = None,
        health: Health | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        graph = settings.graph
        self._settings = settings
        self._graph = graph
        self._tokens = tokens
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._wall = wall
        self._new_request_id = new_request_id
        self._lanes: Lanes = LocalLanes(pacer or Pacer(limits_from(settings)), clock)
        self._header_policy = HeaderPolicy(settings.mime.header_recipients)
        self._faults: set[Fault] = set()
        self._released = asyncio.Condition()
        self._base = graph.endpoint.rstrip("/")
        connections = graph.concurrency or 100
        context = (trust or TlsTrust()).ssl_context()
        via = (proxy or OutboundProxy()).route(self._base).proxy  # the same decision as MSAL's
        self._client = httpx.AsyncClient(
            verify=context,
            proxy=httpx.Proxy(via.url, ssl_context=context if via.tls else None) if via else None,
            trust_env=False,  # the environment is injected (SSL_CERT_FILE, HTTPS_PROXY, NO_PROXY)
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        metrics: Metrics | None = None,
        health: Health | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> GraphTransport:
        """The transport app.py builds: MSAL tokens, trust and proxy from the environment (one
        proxy decision for both clients; `ProxyProblem` for a proxy URL they cannot use)."""
        proxy = OutboundProxy.from_environ(environ)
        return cls(
            settings,
            tokens=MsalTokenSource(settings.graph, environ=environ, proxy=proxy, metrics=metrics),
            trust=TlsTrust.from_environ(environ),
            proxy=proxy,
            metrics=metrics,
            health=health,
            pacer=pacer,
            clock=clock,
            wall=wall,
        )

    # --- Transport ------------------------------------------------------------------------

    async def deliver(self, job: DeliveryJob) -> DeliveryOutcome:
        data, mailbox, changes = await self._prepare(job)
        body = base64.b64encode(data)
        lane = mailbox.lower()
        # The token first: fetching one takes a round trip the pacer must not count as part of
        # the request's way (Exchange counts requests when they arrive).
        token = await self._token()
        hold_for = self._request_time(len(body)) + LEASE_SLACK
        grant = await self._admit(lane, job, len(body), hold_for)
        sent = True  # unless Graph answers otherwise: a lost answer may hide an accepted send
        try:
            answer = await self._request(mailbox, body, token)
            if answer.status == 401:
                await self._tokens.invalidate(token)
                token = await self._token()
                extra = await self._lanes.request(grant, hold_for=hold_for)
                if extra is not None:
                    raise self._paced(extra, mailbox, attempted=True)
                answer = await self._request(mailbox, body, token)
            sent = not 400 <= answer.status < 500  # a 4xx was surely not sent; a 5xx may have been
            if changes is not None and self._metrics is not None:
                record_headers(self._metrics, changes)
            try:
                return self._outcome(job, mailbox, answer)
            except Throttled as throttled:  # Retry-After: the whole mailbox waits
                await self._lanes.block(lane, throttled.retry_after.total_seconds())
                raise
        finally:
            await self._lanes.release(grant, sent=sent)
            async with self._released:
                self._released.notify_all()

    def share_lanes(self, store: LaneStore) -> None:
        """Pace through the store's lanes from now on, together with the other replicas of the
        queue (`SharesLanes`); their clock is the wall clock, which the queue already uses."""
        self._lanes = SharedLanes(
            store, limits_from(self._settings), clock=lambda: self._wall().timestamp()
        )
        event(logger, "graph_pacing_shared", store=store.db.dialect.value)

    async def probe(self) -> None:
        """Raise `ConfigurationFault` while Graph delivery cannot work: a token must be issued
        now and carry the Mail.Send role. Entries held for a mailbox outside the app's scope are
        released by a passing probe and held again if Exchange still says no."""
        if self._faults & {Fault.CONSENT, Fault.ACCESS_DENIED, Fault.TOKEN_REJECTED}:
            await self._tokens.reset()
        token = await self._token()
        roles = token.roles()
        if roles is not None and "Mail.Send" not in roles:
            fault = GraphConfigurationFault(
                "the access token carries no Mail.Send application role: add the Microsoft "
                "Graph application permission Mail.Send and grant admin consent",
                fault=Fault.CONSENT,
            )
            self._record_fault(fault)
            raise fault
        self._recovered()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._tokens.aclose()

    # --- steps ------------------------------------------------------------------------------

    async def _prepare(self, job: DeliveryJob) -> tuple[bytes, str, HeaderResult | None]:
        """The bytes Graph gets and the mailbox that sends them (same on every attempt)."""
        graph = self._graph
        result = await reconcile_headers_async(
            job.data, job.recipients, self._header_policy, offload_above=0
        )
        if result.report.unreadable is not None:
            raise PermanentFailure(
                f"the headers cannot be checked against the envelope: {result.report.unreadable}"
            )
        if result.refused:
            raise PermanentFailure(
                "refused by MXRELAY_HEADER_RECIPIENTS=reject: the headers name recipients the "
                f"relay did not accept ({result.report.describe()})"
            )
        # The From as read at accept time (reconciliation never changes it), else read now.
        author = (
            stored_author(job.header_from)
            if job.header_from is not None
            else header_from(result.data)
        )
        mailbox = choose_mailbox(
            graph.mailbox, MailboxSource(graph.mailbox_from), job.mail_from, author
        )
        if mailbox is None:
            raise PermanentFailure(
                "no sending mailbox: the message has neither a From address nor an envelope "
                "sender; set MXRELAY_GRAPH_MAILBOX"
            )
        if not sender_allowed(job.mail_from, author or mailbox, graph.allowed_senders):
            raise PermanentFailure("the sender is not in MXRELAY_GRAPH_ALLOWED_SENDERS")
        sender = job.mail_from.strip("<> ") or mailbox
        data = complete_headers(
            result.data,
            stored_id=job.message_id,
            hostname=self._settings.service.hostname,
            received_at=self._received_at(job),
            sender=sender,
        )
        limit = graph.max_message_size
        if limit and len(data) > limit:
            raise PermanentFailure(
                f"the message ({len(data)} bytes) is larger than "
                f"MXRELAY_GRAPH_MAX_MESSAGE_SIZE ({limit} bytes)"
            )
        return data, mailbox, result if result.report.changes else None

    def _received_at(self, job: DeliveryJob) -> datetime:
        if job.received_at is not None:
            return job.received_at
        try:  # the store's ids are ULIDs, which carry the time they were made
            return ULID.from_str(job.message_id).datetime
        except ValueError:
            return self._wall()

    async def _admit(self, lane: str, job: DeliveryJob, size: int, hold_for: float) -> Grant:
        """A pacing grant; a wait shorter than a trip through the queue (a slot about to free
        up, a promised slot a moment away) is waited out here, anything longer is `Throttled`."""
        key = f"{job.message_id}:{job.variant}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHORT_WAIT
        while True:
            try:
                decision = await self._lanes.acquire(
                    lane, key, recipients=len(job.recipients), size=size, hold_for=hold_for
                )
            except LanesUnavailable as exc:
                raise ThrottledBeforeSending(
                    f"paced: {exc}; waiting {STORE_RETRY:.0f}s in the queue",
                    retry_after=timedelta(seconds=STORE_RETRY),
                ) from None
            if isinstance(decision, Grant):
                return decision
            if isinstance(decision, Never):
                raise PermanentFailure(f"the message can never be sent: {decision.detail}")
            remaining = deadline - loop.time()
            if decision.limit is Limit.CONCURRENCY and remaining > 0:
                async with self._released:  # woken when a request in flight ends
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._released.wait(), remaining)
            elif decision.seconds <= remaining:
                await asyncio.sleep(decision.seconds)
            else:
                raise self._paced(decision, lane)

    def _paced(self, wait: Wait, mailbox: str, *, attempted: bool = False) -> Throttled:
        """The message waits in the queue; before any request that is not an attempt."""
        if self._metrics is not None:
            self._metrics.graph_pacing_waits.labels(limit=wait.limit.value).inc()
        kind = Throttled if attempted else ThrottledBeforeSending
        if wait.limit is Limit.RETRY_AFTER:
            detail = "Graph asked this sending mailbox to wait (Retry-After)"
        else:
            detail = f"the sending mailbox is at its {wait.limit.value.replace('_', ' ')} limit"
        return kind(
            f"paced: {detail}; waiting {wait.seconds:.1f}s in the queue",
            retry_after=timedelta(seconds=wait.seconds),
        )

    async def _token(self) -> AccessToken:
        try:
            return await self._tokens.token()
        except GraphConfigurationFault as fault:
            self._record_fault(fault)
            raise

    def _request_time(self, size: int) -> float:
        """The longest a sendMail request of `size` bytes may take."""
        graph = self._graph
        return graph.timeout.total_seconds() + graph.timeout_per_mib.total_seconds() * size / MIB

    async def _request(self, mailbox: str, body: bytes, token: AccessToken) -> GraphAnswer:
        graph = self._graph
        total = self._request_time(len(body))
        url = f"{self._base}/v1.0/users/{quote(mailbox, safe='@')}/sendMail"
        headers = {
            "Authorization": f"Bearer {token.value}",
            "Content-Type": "text/plain",
            "client-request-id": self._new_request_id(),
            "return-client-request-id": "true",
        }
        timeout = httpx.Timeout(total, connect=graph.connect_timeout.total_seconds())
        started = self._clock()
        try:
            async with asyncio.timeout(total):
                response = await self._client.post(
                    url, content=body, headers=headers, timeout=timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            self._count_request("timeout", started)
            raise UpstreamUnavailable(
                f"Graph did not answer within {total:.0f}s; it may have accepted the message "
                "(a retry keeps the same Message-ID)"
            ) from None
        except httpx.ConnectError as exc:
            self._count_request("network", started)
            raise UpstreamUnavailable(
                f"cannot connect to Graph at {self._base} ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            self._count_request("network", started)
            raise UpstreamUnavailable(
                f"the connection to Graph failed before an answer ({type(exc).__name__}); it "
                "may have accepted the message (a retry keeps the same Message-ID)"
            ) from None
        self._count_request(f"{response.status_code // 100}xx", started, len(body))
        code, message = (None, "") if response.is_success else parse_error_body(response.content)
        return GraphAnswer(
            response.status_code,
            code,
            message,
            response.headers.get("request-id"),
            parse_retry_after(response.headers.get("retry-after"), self._wall()),
        )

    def _outcome(self, job: DeliveryJob, mailbox: str, answer: GraphAnswer) -> DeliveryOutcome:
        classification = classify(answer, fixed_mailbox=bool(self._graph.mailbox))
        if answer.error_code is not None and self._metrics is not None:
            label = answer.error_code if answer.error_code in GRAPH_ERROR_CODES else "other"
            self._metrics.graph_errors.labels(code=label).inc()
        if classification.verdict is GraphVerdict.DELIVERED:
            self._recovered()
            text = f"accepted by Microsoft Graph from {mailbox}"
            return DeliveryOutcome(
                tuple(
                    RecipientOutcome(r, RecipientStatus.DELIVERED, 250, "2.0.0", text)
                    for r in job.recipients
                ),
                remote_id=answer.request_id,
                detail=text,
                http_status=answer.status,
            )
        error = to_error(classification, answer)
        if classification.verdict is GraphVerdict.THROTTLED:
            assert isinstance(error, Throttled)
            if self._metrics is not None:
                self._metrics.graph_throttled.inc()
            event(
                logger,
                "graph_throttled",
                retry_after=error.retry_after.total_seconds(),
                status=answer.status,
                request_id=answer.request_id,
            )
        if isinstance(error, GraphConfigurationFault):
            self._record_fault(error)
        raise error

    # --- bookkeeping -------------------------------------------------------------------------

    def _count_request(self, status_class: str, started: float, size: int = 0) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.graph_requests.labels(status_class=status_class).inc()
        metrics.graph_request_latency.observe(max(self._clock() - started, 0.0))
        if size:
            metrics.graph_upload_bytes.inc(size)

    def _record_fault(self, fault: GraphConfigurationFault) -> None:
        first = fault.fault not in self._faults
        self._faults.add(fault.fault)
        if self._metrics is not None:
            self._metrics.graph_configuration_fault.labels(fault=fault.fault.value).set(1)
        if self._health is not None:
            self._health.set(HEALTH_CONDITION, False, f"Graph: {fault.detail}")
        if first:
            event(
                logger,
                "graph_configuration_fault",
                logging.ERROR,
                fault=fault.fault.value,
                detail=fault.detail,
                error_code=fault.error_code,
                request_id=fault.remote_id,
            )

    def _recovered(self) -> None:
        if self._faults:
            event(logger, "graph_configuration_fault_cleared", faults=sorted(self._faults))
            self._faults.clear()
        if self._metrics is not None:
            for fault in CONFIGURATION_FAULTS:
                self._metrics.graph_configuration_fault.labels(fault=fault.value).set(0)
        if self._health is not None:
            self._health.set(HEALTH_CONDITION, True)


def limits_from(settings: Settings) -> PacingLimits:
    graph = settings.graph
    return PacingLimits(
        messages=graph.messages_per_minute,
        requests=graph.requests_per_10_minutes,
        upload_bytes=graph.upload_bytes_per_5_minutes,
        concurrency=graph.concurrency,
        recipients=graph.daily_recipient_limit,
    )
