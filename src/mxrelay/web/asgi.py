"""The application on MXRELAY_HTTP_LISTEN: the operator's console, the `/api/v1` message log,
probes, all under MXRELAY_UI_WEBROOT (the probes answer at the root as well).

Middlewares guard it, outermost first. `SecurityHeaders` adds to every response the headers that
keep it from being framed, sniffed into another type, or made to run or load anything (a
console page replaces the policy with its own, which allows its own script and style files and
nothing inline: `web/console/policy.py`). `HostCheck` answers 400 to a `Host` header that names none of the relay's names, so a
web page whose domain an attacker re-points at the relay (DNS rebinding) cannot read the message
log through a victim's browser, even on a port-forwarded or loopback listener. `OriginCheck`
(`origins.py`) refuses what other sites' pages send and answers CORS. `AuditTrail` (`audit.py`)
records state-changing requests, and `BasicAuth` (`auth.py`) lets in only users whose role
(`roles.py`) the request needs.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mxrelay.config import Settings
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.store.backend import Database
from mxrelay.web.api_v1 import Sending, api_routes
from mxrelay.web.api_v1.events import routes as event_routes
from mxrelay.web.audit import Auditor, AuditTrail
from mxrelay.web.auth import BasicAuth, WebUsers
from mxrelay.web.console import Explain, console_routes
from mxrelay.web.events import EventHub
from mxrelay.web.health import health_routes
from mxrelay.web.info import RelayFacts, relay_info
from mxrelay.web.origins import CorsPolicy, OriginCheck
from mxrelay.web.paths import CleanPaths
from mxrelay.web.roles import acts


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """The `Host` names the UI and API answer to.

    IP literals are always allowed: a rebinding attack needs a name the attacker controls, and a
    browser sends an address as `Host` only for a page loaded from that address, so probes and
    by-address access keep working. `localhost` and its subdomains resolve to loopback in the
    browser itself (RFC 6761), so they cannot be re-pointed either.
    """

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    any: bool = False

    @classmethod
    def build(cls, names: Iterable[str], patterns: Iterable[str]) -> AllowedHosts:
        """From fixed names (MXRELAY_HOSTNAME, the listen host) and MXRELAY_HTTP_ALLOWED_HOSTS."""
        exact = {_bare(name) for name in names if name}
        suffixes = []
        for pattern in patterns:
            if pattern == "*":
                return cls(frozenset(exact), any=True)
            if pattern.startswith("*."):
                suffixes.append(pattern[1:])
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(suffixes))

    @classmethod
    def from_settings(cls, settings: Settings) -> AllowedHosts:
        return cls.build(
            (settings.service.hostname, settings.web.http_listen.host),
            settings.web.allowed_hosts,
        )

    def allows(self, header: str | None) -> bool:
        """Whether a request with this `Host` header (None when absent) is answered."""
        host = host_of(header)
        if host is None:
            return False
        if self.any or host == "localhost" or host.endswith(".localhost"):
            return True
        if _is_address(host) or host in self.names:
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)


def host_of(header: str | None) -> str | None:
    """The host of a `Host` header, lower case, without port or final dot (IPv6 unbracketed);
    None when there is no header or it is not `host[:port]`."""
    text = (header or "").strip().lower()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    else:
        host, colon, port = text.partition(":")
        if colon and not port.isdigit():
            return None
    host = _bare(host)
    if not host or any(char in host for char in " /\\@?#[]"):
        return None
    return host


def _bare(name: str) -> str:
    return name.strip().lower().removesuffix(".")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """ASGI middleware: 400 for a request whose `Host` is not in `allowed`.

    Starlette's TrustedHostMiddleware cannot allow every IP literal, and before Starlette 1.0 it
    cut IPv6 hosts at their first colon, so the decision here is `AllowedHosts.allows`.
    """

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.allowed.allows(
            Headers(scope=scope).get("host")
        ):
            if scope["type"] == "websocket":  # refused before the handshake completes: 403
                await send({"type": "websocket.close", "code": 1008, "reason": ""})
                return
            response = PlainTextResponse("Invalid host header", status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
"""No script, no style, no remote resource, no framing: what every response but a console page
(which sets its own) carries."""

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware: `SECURITY_HEADERS` on every response (a handler's own value wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class Access:
    """Who may use the UI and API, from where: the users, the CORS origins, the login budget."""

    users: WebUsers
    cors: CorsPolicy
    failure_limit: int

    @classmethod
    def from_settings(cls, settings: Settings, users: WebUsers) -> Access:
        web = settings.web
        return cls(users, CorsPolicy.build(web.cors_origins), web.ui_auth_failure_limit)


def web_app(
    db: Callable[[], Database | None],
    health: Health,
    *,
    facts: RelayFacts,
    metrics: Metrics,
    allowed_hosts: AllowedHosts,
    access: Access,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sending: Sending | None = None,
    events: EventHub | None = None,
    webroot: str = "/",
    explain: Explain | None = None,
) -> ASGIApp:
    """The routes inside the middlewares; outside Starlette's own error handler too, so even its
    500 answer carries the security headers. Everything is under `webroot` (`/` or `/prefix/`);
    the probes answer at the root too, where Kubernetes and load balancers look for them."""
    info = functools.partial(relay_info, facts, metrics)
    served: list[BaseRoute] = [
        *console_routes(
            db,
            health,
            webroot=webroot,
            explain=explain,
            operator=lambda r: acts(r.scope),
            told=(lambda: events.told_at) if events is not None else lambda: None,
        ),
        *api_routes(db, info_facts=info, sending=sending, health=health),
        *event_routes(events),
        *health_routes(health),
    ]
    if webroot != "/":
        served = [Mount(webroot.rstrip("/"), routes=served), *health_routes(health)]
    routes = Starlette(routes=served)
    authenticated = BasicAuth(
        routes, access.users, failure_limit=access.failure_limit, clock=clock, webroot=webroot
    )
    audited = AuditTrail(authenticated, Auditor(db, wall_clock))
    guarded = OriginCheck(audited, access.cors, clock=clock)
    # Doubled slashes are answered with a redirect before any login, as Mailpit does.
    return SecurityHeaders(HostCheck(CleanPaths(guarded), allowed_hosts))
