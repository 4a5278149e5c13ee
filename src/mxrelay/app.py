"""The relay as one object: starts the stages the plan names in order, stops them in reverse.

Which stages run is decided once, from the settings, by `runtime/plan.py`; the modules beside it
build each stage. Start: recipient checker → store and delivery (or, in passthrough, the upstream
pool) → SMTP listener → HTTP (metrics and probes, then the web UI and API) → the resolver watch.
Stop (SIGTERM), all within one deadline (`MXRELAY_SHUTDOWN_TIMEOUT`, `shutdown_phases`): SMTP
stops accepting and delivery stops claiming at once; in-flight transactions and deliveries then
finish side by side, what is still running at the end of the drain is cancelled and handed back,
then the store closes, then HTTP. Nothing here decides anything about mail; it only orders the
stages, like Postfix's master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType

from mxrelay import __version__, log
from mxrelay.config import Settings
from mxrelay.health import ConditionName, Health
from mxrelay.metrics import Metrics
from mxrelay.passwords import UserTable
from mxrelay.rcpt.check import RecipientChecker
from mxrelay.runtime.listener import load_users, relay_policy, smtp_server
from mxrelay.runtime.passthrough import PassthroughStage
from mxrelay.runtime.plan import SinkKind, StagePlan, StartupError, plan_stages
from mxrelay.runtime.queued import QueueStage, open_queue_stage
from mxrelay.runtime.readiness import watch_dns
from mxrelay.runtime.submit import PolicySubmission
from mxrelay.smtp.server import SmtpServer
from mxrelay.smtp.sink import Sink
from mxrelay.store.backend import Database
from mxrelay.tasks import cancel_and_wait
from mxrelay.web.api_v1 import Sending
from mxrelay.web.asgi import Access, AllowedHosts, web_app
from mxrelay.web.auth import AuthFileError, WebUsers
from mxrelay.web.events import EventHub, EventLimits
from mxrelay.web.health import metrics_app
from mxrelay.web.info import RelayFacts
from mxrelay.web.server import HttpLimits, HttpServer

__all__ = ["Relay", "StartupError", "shutdown_phases"]

logger = logging.getLogger("mxrelay")

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
        self.plan: StagePlan | None = None
        self.queue_stage: QueueStage | None = None
        self.passthrough: PassthroughStage | None = None
        self.events: EventHub | None = None
        self._users: UserTable | None = None
        self._web_users: WebUsers | None = None
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
        """Open the stages in order: store and delivery (or the upstream pool), the SMTP
        listener, the metrics and web listeners, then the resolver watch."""
        settings = self.settings
        self.metrics.prime(__version__)
        plan = self.plan = plan_stages(settings)
        self.checker = RecipientChecker(
            settings.dns, settings.policy, self.metrics, clock=self.clock
        )
        try:
            web_users = self._web_users = WebUsers.load(settings.web, clock=self.clock)
        except AuthFileError as exc:
            raise StartupError(str(exc)) from None
        sink = await self._open_sink(plan)
        users = self._users = load_users(settings)
        policy = relay_policy(
            settings,
            plan,
            check=self.checker.check,
            sink=sink,
            users=users,
            metrics=self.metrics,
            clock=self.clock,
        )
        self.smtp = smtp_server(
            settings, plan, policy=policy, users=users, metrics=self.metrics, clock=self.clock
        )
        # Mail from the HTTP API goes through the same policy as SMTP mail (runtime/submit.py).
        submission = PolicySubmission(
            policy,
            self.smtp.limits,
            metrics=self.metrics,
            stores=plan.sink is SinkKind.QUEUED,
            clock=self.clock,
        )
        listen = settings.smtp.listen
        with _listening("SMTP", listen):
            await self.smtp.start(listen.host, listen.port)
        self.health.set(ConditionName.SMTP, True, "listening")
        http_limits = HttpLimits.from_settings(settings.web)
        self.events = EventHub(self._database, EventLimits.from_settings(settings.web))
        if self.queue_stage is not None:
            self.queue_stage.sink.announcer = self.events
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
                access=Access.from_settings(settings, web_users),
                clock=self.clock,
                sending=Sending(
                    submission, settings.service.hostname, self.smtp.limits.max_message_size
                ),
                events=self.events,
                webroot=settings.web.ui_webroot,
                explain=self.checker.explain,
            ),
            settings.web.http_listen,
            http_limits,
        )
        with _listening("the web UI", settings.web.http_listen):
            await self.web.start()
        watch = watch_dns(
            self.checker,
            self.health,
            query_timeout=settings.dns.query_timeout.total_seconds(),
            stopping=self._stopping,
            clock=self.clock,
        )
        self._tasks.append(asyncio.get_running_loop().create_task(watch))
        log.event(
            logger,
            "started",
            version=__version__,
            mode=plan.mode.value,
            smtp=_address(self.smtp.sockets),
            metrics=f"{settings.web.metrics_listen.host}:{self.http.port}",
            web=f"{settings.web.http_listen.host}:{self.web.port}",
            upstream=str(settings.upstream.url) if settings.upstream.url else None,
        )

    async def _open_sink(self, plan: StagePlan) -> Sink:
        """The stage after DATA: the store with its delivery, or the upstream pool."""
        if plan.sink is SinkKind.QUEUED:
            self.queue_stage = await open_queue_stage(
                plan, self.settings, self.environ, metrics=self.metrics, health=self.health
            )
            return self.queue_stage.sink
        self.passthrough = PassthroughStage(
            self.settings, transform=plan.transform, metrics=self.metrics, clock=self.clock
        )
        return self.passthrough.sink

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
            self.health.set(ConditionName.SMTP, False, "shutting down")
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
        if self.passthrough is not None:
            await self.passthrough.aclose()
            self.passthrough = None
        if self.checker is not None:
            await self.checker.aclose()
            self.checker = None
        if self._users is not None:
            self._users.close()
        if self._web_users is not None:
            self._web_users.close()
        if self.events is not None:
            await self.events.aclose()
            self.events = None
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


@contextlib.contextmanager
def _listening(what: str, where: object) -> Iterator[None]:
    """A failure to listen on `where` becomes a StartupError naming what could not listen."""
    try:
        yield
    except OSError as exc:
        raise StartupError(f"cannot listen for {what} on {where}: {exc.strerror}") from None


def _address(sockets: list[tuple[str, int]]) -> str:
    return ",".join(f"{host}:{port}" for host, port in sockets)
