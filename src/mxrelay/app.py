"""The relay as one object: builds each stage from the settings, starts them in order, stops them
in reverse.

Start: store → delivery workers → recipient checker → SMTP listener → HTTP (metrics, health).
Stop (SIGTERM), all within one deadline (`MXRELAY_SHUTDOWN_TIMEOUT`, `shutdown_phases`): SMTP
stops accepting and delivery stops claiming at once; in-flight transactions and deliveries then
finish side by side, what is still running at the end of the drain is cancelled and handed back,
then the store closes, then HTTP. Nothing here decides anything about mail; it only connects the
stages, like Postfix's master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType

from mxrelay import __version__, log
from mxrelay.config import Settings
from mxrelay.delivery import Transport
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.graph.prepare import (
    address_allowed,
    graph_size_limit,
    message_sender_allowed,
)
from mxrelay.delivery.graph.proxy import ProxyProblem
from mxrelay.dns.answer import Query, RdType
from mxrelay.dns.check import RecipientChecker
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import IcsPolicy, Variant, record_variants, split_variants_async
from mxrelay.model import DeliveryMode, Reply, ScopeKind, Transaction
from mxrelay.runtime.queued import QueueStage, smarthost_transport
from mxrelay.sinks.passthrough import PassthroughSink, VariantPlan
from mxrelay.smtp.auth import UserTable
from mxrelay.smtp.hooks import SmtpLimits
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.smtp.replies import SENDER_NOT_ALLOWED
from mxrelay.smtp.server import SmtpServer
from mxrelay.smtp.sink import MessageCheck, SenderCheck, Sink
from mxrelay.store.backend import Database, StoreError
from mxrelay.tasks import cancel_and_wait
from mxrelay.upstream.pool import UpstreamPool
from mxrelay.web.asgi import AllowedHosts, web_app
from mxrelay.web.health import metrics_app
from mxrelay.web.info import RelayFacts
from mxrelay.web.server import HttpLimits, HttpServer

logger = logging.getLogger("mxrelay")

DNS_FRESHNESS = 60.0
"""Seconds after which the resolver must answer a probe again for the `dns` status condition
(shown by /healthz; not readiness, see health.py) to stay true."""

SHUTDOWN_RESERVE = 5.0
"""Seconds of the shutdown deadline kept, at most, for what follows the drain."""

HTTP_STOP_MINIMUM = 0.5
"""Seconds the HTTP servers get to stop even when the deadline has passed."""


def shutdown_phases(timeout: float) -> tuple[float, float]:
    """Seconds after SIGTERM at which (1) the drain ends: SMTP transactions and deliveries still
    running are cancelled and handed back, and (2) the delivery process must be gone (killed if
    not). The rest of `timeout` closes the store and the listeners, so the whole stop fits in
    MXRELAY_SHUTDOWN_TIMEOUT, and so inside the pod's termination grace period: a delivery the
    kubelet kills half-way may be sent twice."""
    reserve = min(SHUTDOWN_RESERVE, timeout / 4)
    return timeout - reserve, timeout - reserve / 2


class StartupError(RuntimeError):
    """A stage could not start (port in use, unreadable certificate...); one line for the operator."""


class Relay:
    """All stages of one relay process. Use as an async context manager, or call `run()`."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.environ: Mapping[str, str] = environ if environ is not None else {}
        self.metrics = metrics or Metrics()
        self.health = Health()
        self.clock = clock
        self.checker: RecipientChecker | None = None
        self.smtp: SmtpServer | None = None
        self.http: HttpServer | None = None
        self.web: HttpServer | None = None
        self._pool: UpstreamPool | None = None
        self._users: UserTable | None = None
        self.queue_stage: QueueStage | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._stop_started: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Relay:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        settings = self.settings
        self.metrics.prime(__version__)
        mode = settings.service.delivery
        self.checker = RecipientChecker(
            settings.dns, settings.policy, self.metrics, clock=self.clock
        )
        if mode is not DeliveryMode.PASSTHROUGH:
            self.queue_stage = await self._open_queue(mode)
        sink = self._build_sink(mode)
        users = self._users = _load_users(settings)
        sender_check, message_check = _sender_rules(settings)
        policy = RelayPolicy(
            allowed_clients=settings.smtp.allowed_clients,
            check=self.checker.check,
            sink=sink,
            metrics=self.metrics,
            users=users,
            auth_required=settings.smtp.auth_required,
            sender_check=sender_check,
            message_check=message_check,
            refusal_log_limit=settings.smtp.refusal_log_limit,
            clock=self.clock,
        )
        self.smtp = SmtpServer(
            hostname=settings.service.hostname,
            limits=SmtpLimits.from_settings(settings.smtp, graph_size_limit(settings)),
            policy=policy,
            metrics=self.metrics,
            tls_context=_tls_context(settings),
            auth_enabled=users is not None,
            auth_allow_plaintext=settings.smtp.auth_allow_plaintext,
            clock=self.clock,
        )
        listen = settings.smtp.listen
        with _listening("SMTP", listen):
            await self.smtp.start(listen.host, listen.port)
        self.health.set("smtp", True, "listening")
        http_limits = HttpLimits.from_settings(settings.web)
        self.http = HttpServer(
            metrics_app(self.metrics, self.health), settings.web.metrics_listen, http_limits
        )
        with _listening("metrics", settings.web.metrics_listen):
            await self.http.start()
        self.web = HttpServer(
            web_app(
                self._database,
                self.health,
                facts=RelayFacts.from_settings(settings),
                metrics=self.metrics,
                allowed_hosts=AllowedHosts.from_settings(settings),
            ),
            settings.web.http_listen,
            http_limits,
        )
        with _listening("the web UI", settings.web.http_listen):
            await self.web.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch_dns()))
        log.event(
            logger,
            "started",
            version=__version__,
            mode=mode.value,
            smtp=_address(self.smtp.sockets),
            metrics=f"{settings.web.metrics_listen.host}:{self.http.port}",
            web=f"{settings.web.http_listen.host}:{self.web.port}",
            upstream=str(settings.upstream.url) if settings.upstream.url else None,
        )

    def _build_sink(self, mode: DeliveryMode) -> Sink:
        settings = self.settings
        if mode is DeliveryMode.PASSTHROUGH:
            self._pool = UpstreamPool(
                settings.upstream,
                local_hostname=settings.service.hostname,
                metrics=self.metrics,
                clock=self.clock,
            )
            return PassthroughSink(
                self._pool,
                hostname=settings.service.hostname,
                metrics=self.metrics,
                plan=self._variant_plan(),
                clock=self.clock,
            )
        assert self.queue_stage is not None
        return self.queue_stage.sink

    async def _open_queue(self, mode: DeliveryMode) -> QueueStage:
        """The queued modes: store, sink and delivery worker (store/, runtime/queued.py)."""
        transport: Transport | None
        if mode is DeliveryMode.SMTP:
            transport = smarthost_transport(self.settings, self.metrics)
        elif mode is DeliveryMode.GRAPH:
            try:
                transport = GraphTransport.from_settings(
                    self.settings, self.environ, metrics=self.metrics, health=self.health
                )
            except ProxyProblem as exc:
                raise StartupError(str(exc)) from None
        else:
            transport = None
        stage = QueueStage(
            self.settings, metrics=self.metrics, health=self.health, transport=transport
        )
        try:
            await stage.start()
        except StoreError as exc:
            await stage.aclose(0.0)
            raise StartupError(str(exc)) from None
        return stage

    def _variant_plan(self) -> VariantPlan | None:
        """The transform stage for passthrough: split by MXRELAY_ICS_STRIP, count what changed."""
        try:
            ics = IcsPolicy.from_settings(self.settings.mime)
        except ValueError as exc:
            raise StartupError(f"MXRELAY_ICS_STRIP: {exc}") from None
        if ics.scope.kind is ScopeKind.OFF:
            return None
        metrics = self.metrics

        async def plan(transaction: Transaction) -> Sequence[Variant]:
            variants = await split_variants_async(transaction.data, transaction.recipients, ics)
            record_variants(metrics, variants)
            return variants

        return plan

    async def stop(self) -> None:
        """Drain and close within MXRELAY_SHUTDOWN_TIMEOUT of the first call (`shutdown_phases`):
        SMTP and delivery drain side by side, so the deadline bounds the whole stop, not each
        stage. Safe to call more than once."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        if self._stop_started is None:
            self._stop_started = loop.time()
        timeout = self.settings.service.shutdown_timeout.total_seconds()
        drain_end, hand_back_end = shutdown_phases(timeout)

        def left(until: float) -> float:
            assert self._stop_started is not None
            return max(self._stop_started + until - loop.time(), 0.0)

        drains: list[Awaitable[None]] = []
        if self.smtp is not None:
            self.health.set("smtp", False, "shutting down")
            drains.append(self.smtp.stop(left(drain_end)))
        if self.queue_stage is not None:
            drains.append(
                self.queue_stage.stop_delivering(left(drain_end), within=left(hand_back_end))
            )
        for result in await asyncio.gather(*drains, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
        self.smtp = None
        if self.queue_stage is not None:
            await self.queue_stage.aclose(0.0)
            self.queue_stage = None
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        if self.checker is not None:
            await self.checker.aclose()
            self.checker = None
        if self._users is not None:
            self._users.close()
        for server in (self.web, self.http):
            if server is not None:
                # An HTTP request still running must not hold the process past the deadline.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(server.stop(), max(left(timeout), HTTP_STOP_MINIMUM))
        self.web = self.http = None

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with self:
                await stop.wait()
                log.event(logger, "stopping", reason="signal")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        log.event(logger, "stopped")

    # -- background checks ----------------------------------------------------------------------

    async def _watch_dns(self) -> None:
        """Status condition `dns`: the resolver answered (any RCODE) within DNS_FRESHNESS."""
        assert self.checker is not None
        resolver = self.checker.resolver
        while not self._stopping.is_set():
            last = self.checker.last_answer_at
            if last is None or self.clock() - last > DNS_FRESHNESS / 2:
                await resolver.query(
                    Query(".", RdType.MX), self.settings.dns.query_timeout.total_seconds()
                )
                last = self.checker.last_answer_at
            fresh = last is not None and self.clock() - last <= DNS_FRESHNESS
            self.health.set("dns", fresh, "resolver answers" if fresh else "resolver not answering")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=DNS_FRESHNESS / 4)

    def _database(self) -> Database | None:
        return self.queue_stage.db if self.queue_stage is not None else None

    # -- what tests and the CLI read --------------------------------------------------------------

    @property
    def smtp_port(self) -> int:
        assert self.smtp is not None
        return self.smtp.sockets[0][1]

    @property
    def metrics_port(self) -> int:
        assert self.http is not None
        return self.http.port

    @property
    def web_port(self) -> int:
        assert self.web is not None
        return self.web.port


def _sender_rules(settings: Settings) -> tuple[SenderCheck | None, MessageCheck | None]:
    """Graph mode's MXRELAY_GRAPH_ALLOWED_SENDERS: the envelope sender at MAIL, then the header
    From (the identity Exchange sends as) at the end of DATA; both must be allowed."""
    allowed = settings.graph.allowed_senders
    if settings.service.delivery is not DeliveryMode.GRAPH or not allowed:
        return None, None

    def envelope_allowed(mail_from: str, session: object) -> Reply | None:
        return None if not mail_from or address_allowed(mail_from, allowed) else SENDER_NOT_ALLOWED

    def message_allowed(mail_from: str, data: bytes) -> Reply | None:
        return None if message_sender_allowed(mail_from, data, allowed) else SENDER_NOT_ALLOWED

    return envelope_allowed, message_allowed


@contextlib.contextmanager
def _listening(what: str, where: object) -> Iterator[None]:
    """A failure to listen on `where` becomes a StartupError naming what could not listen."""
    try:
        yield
    except OSError as exc:
        raise StartupError(f"cannot listen for {what} on {where}: {exc.strerror}") from None


def _address(sockets: list[tuple[str, int]]) -> str:
    return ",".join(f"{host}:{port}" for host, port in sockets)


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    smtp = settings.smtp
    if smtp.tls_cert_file is None or smtp.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(smtp.tls_cert_file, smtp.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(
            f"MXRELAY_SMTP_TLS_CERT_FILE/KEY_FILE cannot be loaded: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return context


def _load_users(settings: Settings) -> UserTable | None:
    path = settings.smtp.auth_users_file
    if path is None:
        return None
    try:
        return UserTable.load(path)
    except (OSError, ValueError) as exc:
        raise StartupError(f"MXRELAY_SMTP_AUTH_USERS_FILE: {path} cannot be used: {exc}") from None
