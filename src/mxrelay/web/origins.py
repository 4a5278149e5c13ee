"""Which web pages may call the UI and API: cross-site refusal and CORS.

A browser attaches the credentials it holds for the relay (a Basic login it remembers) to requests
any page makes, so a page elsewhere could delete or release mail with them. A request is refused
(403) when its `Origin` names another origin than the request's own (its `Host`) that
MXRELAY_UI_CORS_ORIGINS does not list, and a state-changing one (any method but GET, HEAD and
OPTIONS, and a websocket handshake) also when the browser marks it `Sec-Fetch-Site: cross-site`
or `same-site` without such an origin. A GET from another site's page (a link, an image, a
frame) passes but changes nothing: reading a message then does not mark it read
(`api_v1/reading.py`). A request with neither header (curl, scripts, API clients) passes: it
carries only the credentials its sender chose to send. An origin in the list gets Mailpit's CORS
answers (`--api-cors`): its `Origin` echoed, the methods, and preflights (OPTIONS) answered here,
before any authentication, since a browser sends them without credentials. Entries match on host
and port, under any scheme, as Mailpit's do, unless written with one.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mxrelay.rates import ThrottledLog
from mxrelay.web.auth import deny
from mxrelay.web.roles import client_address, is_state_changing

logger = logging.getLogger("mxrelay.web")

CROSS_SITE = frozenset({"cross-site", "same-site"})
"""`Sec-Fetch-Site` values of a request some other site's page made (a subdomain is another site
for this purpose: it may be someone else's)."""

ALLOW_METHODS = "GET, POST, DELETE, PUT, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, *"
"""`*` covers what a page sends without credentials; Authorization must be named to be sent."""
PREFLIGHT_MAX_AGE = "600"
LOG_INTERVAL = 10.0
SHOWN_ORIGIN = 200
"""Characters of a refused `Origin` written to the log."""


class Verdict(enum.Enum):
    ALLOW = "allow"
    """The relay's own page, or no browser at all."""
    ALLOW_CORS = "allow-cors"
    """A listed origin: answered with the CORS headers."""
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """MXRELAY_UI_CORS_ORIGINS: origins written with a scheme match exactly; `host[:port]`
    entries match that host and port under any scheme; `*` matches every origin."""

    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    any: bool = False

    @classmethod
    def build(cls, entries: Iterable[str]) -> CorsPolicy:
        origins: set[str] = set()
        hosts: set[str] = set()
        for entry in entries:
            if entry == "*":
                return cls(any=True)
            (origins if "://" in entry else hosts).add(entry.lower())
        return cls(frozenset(origins), frozenset(hosts))

    def allows(self, origin: str) -> bool:
        if self.any:
            return True
        parsed = _origin(origin)
        if parsed is None:
            return False
        scheme, netloc = parsed
        return f"{scheme}://{netloc}" in self.origins or netloc in self.hosts


def _origin(header: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an `Origin` header, lower case; None for `null` or junk."""
    try:
        parts = urlsplit(header.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def from_another_site(fetch_site: str | None) -> bool:
    """Whether the browser says another site's page made the request (`Sec-Fetch-Site`)."""
    return (fetch_site or "").strip().lower() in CROSS_SITE


def same_origin(origin: str, host: str | None) -> bool:
    """Whether `Origin` names the host and port the request was sent to (its `Host`)."""
    parsed = _origin(origin)
    return parsed is not None and host is not None and parsed[1] == host.strip().lower()


def judge(
    method: str,
    *,
    origin: str | None,
    fetch_site: str | None,
    host: str | None,
    websocket: bool,
    cors: CorsPolicy,
) -> Verdict:
    """Whether a request may go on, and whether it is answered as CORS. Pure."""
    if origin is not None:
        if cors.allows(origin):
            return Verdict.ALLOW_CORS
        if not same_origin(origin, host):
            return Verdict.REFUSE
    changing = websocket or is_state_changing(method)
    if changing and from_another_site(fetch_site):
        return Verdict.REFUSE
    return Verdict.ALLOW


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "vary": "Origin",
    }


class OriginCheck:
    """ASGI middleware: `judge` each request; answer OPTIONS (preflights) itself."""

    def __init__(
        self, app: ASGIApp, cors: CorsPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.cors = cors
        self.refused_log = ThrottledLog(
            logger, "web.cross_site_refused", logging.WARNING, LOG_INTERVAL, clock=clock
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        origin = headers.get("origin")
        websocket = (
            scope["type"] == "websocket" or headers.get("upgrade", "").lower() == "websocket"
        )
        verdict = judge(
            method,
            origin=origin,
            fetch_site=headers.get("sec-fetch-site"),
            host=headers.get("host"),
            websocket=websocket,
            cors=self.cors,
        )
        if verdict is Verdict.REFUSE:
            self.refused_log.event(
                client=client_address(scope),
                origin=(origin or "")[:SHOWN_ORIGIN],
                fetch_site=(headers.get("sec-fetch-site") or "")[:SHOWN_ORIGIN],
                method=method,
                path=scope["path"],
            )
            refusal = PlainTextResponse("Blocked due to CORS violation\n", status_code=403)
            await deny(scope, receive, send, refusal)
            return
        extra = cors_headers(origin) if verdict is Verdict.ALLOW_CORS and origin else {}
        if scope["type"] == "http" and method == "OPTIONS":
            # Mailpit's blank answer to OPTIONS; a preflight carries no credentials.
            preflight = {"access-control-max-age": PREFLIGHT_MAX_AGE} if extra else {}
            await Response(b"", 200, headers={**extra, **preflight})(scope, receive, send)
            return
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                response_headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name == "vary":
                        response_headers.add_vary_header(value)
                    else:
                        response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)
