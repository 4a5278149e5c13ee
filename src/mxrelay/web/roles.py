"""Who may do what on the web UI and API: the roles, the rule that gives each request the role it
needs, and the principal a request was authenticated as.

The rule is by request, not by a list of routes: reading (GET, HEAD, the websocket) needs a
`viewer`, anything else (delete, mark read, tag, release, retry) an `operator`, and
`POST /api/v1/send` a sender (the users of MXRELAY_SEND_API_AUTH_FILE, or else an operator). A
route added later is covered by its method without a word here. Only the probes and CORS
preflights (answered before any handler, with no data) are open. Under MXRELAY_UI_WEBROOT the
rule reads the path the routes see, without the prefix: `/mail/api/v1/send` is the send route.
Pure: `auth.py` applies it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
"""Probes: a kubelet or a load balancer has no credentials, and they show no message data."""

SEND_PATH = "/api/v1/send"
READ_METHODS = frozenset({"GET", "HEAD"})
SAFE_METHODS = READ_METHODS | {"OPTIONS"}
"""Methods that change nothing; every other one is state-changing (and audited)."""

PRINCIPAL_KEY = "mxrelay.principal"
"""Where the authentication middleware leaves the request's `Principal` in the ASGI scope."""


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    SENDER = "sender"

    def allows(self, needed: Role) -> bool:
        """Whether a user of this role may make a request that needs `needed`."""
        if self is Role.OPERATOR:
            return needed in (Role.VIEWER, Role.OPERATOR)
        return self is needed


def route_path(path: str, webroot: str = "/") -> str | None:
    """The path the routes under `webroot` (`/` or `/prefix/`) see: `path` without the prefix;
    None for a path outside it."""
    if webroot == "/":
        return path
    prefix = webroot.rstrip("/")
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) :] or "/"
    return None


def required_role(method: str, path: str, webroot: str = "/") -> Role | None:
    """The role a request needs, None when it is open. `path` is the one the router dispatches
    on, under `webroot`: a spelling it would route elsewhere (`//livez`, `/api/v1/send/`) only
    needs more. The probes answer at the root as well as under the prefix."""
    method = method.upper()
    routed = route_path(path, webroot)
    if method == "OPTIONS" or (
        method in READ_METHODS and (path in OPEN_PATHS or routed in OPEN_PATHS)
    ):
        return None
    if method == "POST" and routed == SEND_PATH:
        return Role.SENDER
    if method in READ_METHODS:
        return Role.VIEWER
    return Role.OPERATOR


def is_state_changing(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request was let in as."""

    user: str | None
    """The user name; None where the UI has no login of its own (loopback, or a proxy's)."""
    role: Role
    client: str
    """The client's address."""

    @property
    def actor(self) -> str:
        """The name the audit log and the log lines give: the user, or `anonymous`."""
        return self.user if self.user is not None else "anonymous"


def principal_of(scope: Mapping[str, Any]) -> Principal | None:
    """The request's principal; None when it was not authenticated (open, or refused)."""
    found = scope.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else None


def acts(scope: Mapping[str, Any]) -> bool:
    """Whether the request was let in with the operator's role (the console shows actions only
    then; the API checks the role again on each action)."""
    principal = principal_of(scope)
    return principal is not None and principal.role.allows(Role.OPERATOR)


def client_address(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
