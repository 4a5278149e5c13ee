"""HTTP Basic authentication for the web UI and API, with roles (`roles.py`).

Users come from htpasswd files (`passwords.py`, what `htpasswd -B` writes): MXRELAY_UI_AUTH_FILE
for the UI and API, each user a viewer unless MXRELAY_UI_OPERATORS names them, and
MXRELAY_SEND_API_AUTH_FILE for `POST /api/v1/send` alone (then only its users may send, as with
Mailpit's send API auth). A request without good credentials gets 401 with a Basic challenge, a
user whose role is short of what the request needs gets 403. Without a UI users file (loopback, or
an authenticating proxy in front, which the settings insist on) everyone is let in as `anonymous`.

Checks cost a bcrypt each, so they run on a bounded pool of their own (shared by both files), a
client's good credentials are remembered for a minute (`VerifiedCache`: HTTP Basic repeats them
with every request), and a client address that keeps failing gets 429 without a check until its
failures age out (MXRELAY_UI_AUTH_FAILURE_LIMIT per minute; checks under way count as failures
until they end, so concurrent guesses cannot overdraw the budget). The user name is logged; a password
or a hash never is, nor the Authorization header.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mxrelay import log
from mxrelay.config import WebSettings
from mxrelay.passwords import CheckPool, UserTable, VerifiedCache
from mxrelay.rates import FailureBudget, ThrottledLog
from mxrelay.web.roles import PRINCIPAL_KEY, Principal, Role, client_address, required_role

logger = logging.getLogger("mxrelay.web")

REALM = "mxrelay"
FAILURE_PERIOD = 60.0
"""Seconds over which MXRELAY_UI_AUTH_FAILURE_LIMIT failures are allowed per client."""
LOG_INTERVAL = 10.0
"""Seconds between two lines of one kind of refusal; the ones between are counted."""
AUTHORIZATION_LIMIT = 4096
"""Characters of an Authorization header decoded at most; a longer one is not Basic credentials."""


class AuthFileError(ValueError):
    """A users file cannot be used; the text names the variable, never a line's content."""


@dataclass(frozen=True, slots=True)
class WebUsers:
    """Who may log in to the web UI and API, and as what."""

    ui: UserTable | None
    """Users of MXRELAY_UI_AUTH_FILE; None: no login (everyone is an anonymous operator)."""
    operators: frozenset[str]
    every_user_operates: bool
    send: UserTable | None
    """Users of MXRELAY_SEND_API_AUTH_FILE; None: the UI's operators may send."""
    pool: CheckPool

    @classmethod
    def load(
        cls,
        web: WebSettings,
        *,
        pool: CheckPool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> WebUsers:
        """Read the users files the settings name; AuthFileError when one cannot be used. Both
        files' checks share `pool` (one of their own by default)."""
        pool = pool if pool is not None else CheckPool(name="mxrelay-web-auth")
        ui = _table(web.ui_auth_file, "MXRELAY_UI_AUTH_FILE", pool, clock)
        send = _table(web.send_api_auth_file, "MXRELAY_SEND_API_AUTH_FILE", pool, clock)
        every = "*" in web.ui_operators
        operators = frozenset(name for name in web.ui_operators if name != "*")
        if ui is not None and (unknown := sorted(operators - ui.names)):
            raise AuthFileError(
                f"MXRELAY_UI_OPERATORS: names {', '.join(unknown)}, not in MXRELAY_UI_AUTH_FILE; "
                "expected users of that file, or *"
            )
        return cls(ui, operators, every, send, pool)

    def role_of(self, user: str) -> Role:
        """The role of a user of the UI file."""
        operator = self.every_user_operates or user in self.operators
        return Role.OPERATOR if operator else Role.VIEWER

    def close(self) -> None:
        self.pool.close()


def _table(
    path: Path | None, variable: str, pool: CheckPool, clock: Callable[[], float]
) -> UserTable | None:
    if path is None:
        return None
    try:
        table = UserTable.load(path, pool=pool, cache=VerifiedCache(clock=clock))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or (
            "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        )
        raise AuthFileError(f"{variable}: {path} cannot be used: {reason}") from None
    if not len(table):
        raise AuthFileError(f"{variable}: {path} cannot be used: it names no user")
    return table


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic` header, None for anything else. Bytes that
    are not UTF-8 survive as surrogates, so such a password is checked as the bytes it was."""
    if header is None or len(header) > AUTHORIZATION_LIMIT:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def unauthorized() -> Response:
    """Mailpit's answer, with this relay's realm."""
    return PlainTextResponse(
        "Unauthorized.\n", status_code=401, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
    )


async def deny(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    """Answer with `response`; a websocket handshake gets it too where the server can send one
    (the denial response extension), else it is closed before it is accepted (a 403)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await send({"type": "websocket.close", "code": 1008, "reason": ""})
        return
    await response(scope, receive, send)


class BasicAuth:
    """ASGI middleware: authenticate, check the role `required_role` names (for the routes under
    `webroot`), leave the `Principal` in the scope (`roles.principal_of`) for the handlers and the
    audit log."""

    def __init__(
        self,
        app: ASGIApp,
        users: WebUsers,
        *,
        failure_limit: int,
        clock: Callable[[], float] = time.monotonic,
        webroot: str = "/",
    ) -> None:
        self.app = app
        self.users = users
        self.webroot = webroot
        self.failures = FailureBudget(failure_limit, FAILURE_PERIOD, clock=clock)
        self.failed_log = ThrottledLog(
            logger, "web.login_failed", logging.WARNING, LOG_INTERVAL, clock=clock
        )
        self.throttled_log = ThrottledLog(
            logger, "web.login_throttled", logging.WARNING, LOG_INTERVAL, clock=clock
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        needed = required_role(method, scope["path"], self.webroot)
        if needed is None:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        table = self.users.send if needed is Role.SENDER else None
        if table is None:
            table = self.users.ui
            needed = Role.OPERATOR if needed is Role.SENDER else needed
        if table is None:  # no login of mxrelay's own: loopback, or a proxy's
            scope[PRINCIPAL_KEY] = Principal(None, Role.OPERATOR, client)
            await self.app(scope, receive, send)
            return
        principal, refusal = await self._authenticate(scope, table, client)
        if principal is not None and not principal.role.allows(needed):
            scope[PRINCIPAL_KEY] = principal  # the audit log records the attempt
            log.event(
                logger,
                "web.forbidden",
                logging.WARNING,
                user=principal.user,
                role=principal.role.value,
                needed=needed.value,
                method=method,
                path=scope["path"],
                client=client,
            )
            refusal = PlainTextResponse(f"Forbidden: this needs the {needed} role.\n", 403)
        if refusal is not None:
            await deny(scope, receive, send, refusal)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)

    async def _authenticate(
        self, scope: Scope, table: UserTable, client: str
    ) -> tuple[Principal | None, Response | None]:
        credentials = basic_credentials(Headers(scope=scope).get("authorization"))
        if credentials is None:
            return None, unauthorized()
        user, password = credentials
        if table.remembers(user, password):
            # A user whose login passed lately is let in even past the budget: behind a proxy
            # every client shares its address, and one guesser must not lock all of them out.
            return Principal(user, self._role(table, user), client), None
        if not self.failures.allows(client):
            self.throttled_log.event(client=client)
            return None, PlainTextResponse(
                "Too many failed logins; try again later.\n",
                status_code=429,
                headers={"Retry-After": str(int(FAILURE_PERIOD))},
            )
        with self.failures.checking(client):
            verdict = await table.verify(user, password)
        if verdict is None:
            return None, PlainTextResponse(
                "Busy checking passwords; try again.\n",
                status_code=503,
                headers={"Retry-After": "1"},
            )
        if not verdict:
            self.failures.failed(client)
            self.failed_log.event(client=client, user=user)
            return None, unauthorized()
        return Principal(user, self._role(table, user), client), None

    def _role(self, table: UserTable, user: str) -> Role:
        return Role.SENDER if table is self.users.send else self.users.role_of(user)
