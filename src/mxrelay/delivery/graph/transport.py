"""The Microsoft Graph transport: one queued message variant → one `sendMail` request.

An attempt, in order: the message is rebuilt from the stored bytes with its To/Cc/Bcc made to name
exactly the variant's accepted recipients (`prepare.py`, so a retry sends the same bytes); a token
is fetched (`auth.py`); the sending mailbox's pacing lane grants the request or the message waits
in the queue (`lanes.py`); the request goes (`client.py`) and the answer is classified
(`outcome.py`). A 401 refreshes the token once and retries at once; 429 and 5xx-with-Retry-After
close the whole mailbox lane; configuration faults are reported to the `FaultTracker` (`faults.py`)
until a send or `probe()` succeeds.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from mxrelay.config import Settings
from mxrelay.delivery.errors import Throttled
from mxrelay.delivery.graph.auth import AccessToken, MsalTokenSource, TokenSource
from mxrelay.delivery.graph.client import SendMailClient
from mxrelay.delivery.graph.credentials import TlsTrust
from mxrelay.delivery.graph.faults import FaultTracker
from mxrelay.delivery.graph.lanes import LocalLanes, PacedLanes, SharedLanes, limits_from
from mxrelay.delivery.graph.outcome import (
    GraphAnswer,
    GraphConfigurationFault,
    GraphVerdict,
    classify,
    to_error,
)
from mxrelay.delivery.graph.pacing import Pacer
from mxrelay.delivery.graph.prepare import prepare
from mxrelay.delivery.graph.proxy import OutboundProxy
from mxrelay.delivery.transport import (
    DeliveryJob,
    DeliveryOutcome,
    RecipientOutcome,
    RecipientStatus,
)
from mxrelay.health import Health
from mxrelay.log import event
from mxrelay.metrics import GraphErrorCode, Metrics
from mxrelay.mime.headers import HeaderPolicy, HeaderResult
from mxrelay.mime.pipeline import reconcile_headers_async
from mxrelay.model import DeliveryMode, GraphFault, utc_now
from mxrelay.store.lanes import LaneStore

logger = logging.getLogger(__name__)

LEASE_SLACK = 30.0
"""Seconds a pacing grant's lease outlasts the longest its request may take: it lapses (its
concurrency slot freed, its request counted as answered) only when this relay is gone."""

TOKEN_FAULTS = frozenset({GraphFault.CONSENT, GraphFault.ACCESS_DENIED, GraphFault.TOKEN_REJECTED})
"""Faults a probe re-checks with a token fetched afresh (consent or scope may have changed)."""


class GraphTransport:
    """`Transport` for `MXRELAY_DELIVERY=graph`. One instance per relay; it owns its HTTP client,
    token source and pacer, and closes them in `aclose()`."""

    name = DeliveryMode.GRAPH

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
        self._settings = settings
        self._tokens = tokens
        self._metrics = metrics
        self._wall = wall
        self._header_policy = HeaderPolicy(settings.mime.header_recipients)
        self._faults = FaultTracker(metrics, health)
        local = LocalLanes(pacer or Pacer(limits_from(settings)), clock)
        self._lanes = PacedLanes(local, metrics=metrics)
        self._client = SendMailClient(
            settings.graph,
            trust=trust,
            proxy=proxy,
            metrics=metrics,
            clock=clock,
            wall=wall,
            new_request_id=new_request_id,
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
        reconciled = await reconcile_headers_async(job.data, job.recipients, self._header_policy)
        prepared = prepare(job, reconciled, self._settings, now=self._wall())
        mailbox = prepared.mailbox
        body = base64.b64encode(prepared.data)
        lane = mailbox.lower()
        # The token first: fetching one takes a round trip the pacer must not count as part of
        # the request's way (Exchange counts requests when they arrive).
        token = await self._token()
        hold_for = self._client.request_time(len(body)) + LEASE_SLACK
        grant = await self._lanes.admit(
            lane,
            f"{job.message_id}:{job.variant}",
            recipients=len(job.recipients),
            size=len(body),
            hold_for=hold_for,
        )
        sent = True  # unless Graph answers otherwise: a lost answer may hide an accepted send
        try:
            answer = await self._client.send(mailbox, body, token)
            if answer.status == 401:
                await self._tokens.invalidate(token)
                token = await self._token()
                await self._lanes.request(grant, hold_for=hold_for)
                answer = await self._client.send(mailbox, body, token)
            sent = not 400 <= answer.status < 500  # a 4xx was surely not sent; a 5xx may have been
            if prepared.changes is not None and self._metrics is not None:
                record_headers(self._metrics, prepared.changes)
            try:
                return self._outcome(job, mailbox, answer)
            except Throttled as throttled:  # Retry-After: the whole mailbox waits
                await self._lanes.block(lane, throttled.retry_after.total_seconds())
                raise
        finally:
            await self._lanes.release(grant, sent=sent)

    def share_lanes(self, store: LaneStore) -> None:
        """Pace through the store's lanes from now on, together with the other replicas of the
        queue (`SharesLanes`); their clock is the wall clock, which the queue already uses."""
        self._lanes.lanes = SharedLanes(
            store, limits_from(self._settings), clock=lambda: self._wall().timestamp()
        )
        event(logger, "graph_pacing_shared", store=store.db.dialect.value)

    async def probe(self) -> None:
        """Raise `ConfigurationFault` while Graph delivery cannot work: a token must be issued
        now and carry the Mail.Send role. Entries held for a mailbox outside the app's scope are
        released by a passing probe and held again if Exchange still says no."""
        if self._faults.active & TOKEN_FAULTS:
            await self._tokens.reset()
        token = await self._token()
        roles = token.roles()
        if roles is not None and "Mail.Send" not in roles:
            fault = GraphConfigurationFault(
                "the access token carries no Mail.Send application role: add the Microsoft "
                "Graph application permission Mail.Send and grant admin consent",
                fault=GraphFault.CONSENT,
            )
            self._faults.record(fault)
            raise fault
        self._faults.recovered()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._tokens.aclose()

    # --- steps ------------------------------------------------------------------------------

    async def _token(self) -> AccessToken:
        try:
            return await self._tokens.token()
        except GraphConfigurationFault as fault:
            self._faults.record(fault)
            raise

    def _outcome(self, job: DeliveryJob, mailbox: str, answer: GraphAnswer) -> DeliveryOutcome:
        classification = classify(answer, fixed_mailbox=bool(self._settings.graph.mailbox))
        if answer.error_code is not None and self._metrics is not None:
            self._metrics.graph_errors.labels(code=GraphErrorCode.of(answer.error_code)).inc()
        if classification.verdict is GraphVerdict.DELIVERED:
            self._faults.recovered()
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
            self._faults.record(error)
        raise error


def record_headers(metrics: Metrics, result: HeaderResult) -> None:
    """Count the To/Cc/Bcc changes of one Graph submission."""
    for change in result.report.changes:
        metrics.header_recipients_changed.labels(change=change.change).inc()
