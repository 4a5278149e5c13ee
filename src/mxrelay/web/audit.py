"""Recording what users do through the API in the audit log (`store/audit.py`), and a log line.

A handler that changes something says what, on what and on how many, in one line:

    await audit(request, action="delete", target=ids, count=deleted)

The user and the client come from the request (the `Principal` authentication left in the scope).
`AuditTrail`, a middleware, makes sure nothing state-changing escapes the log: a request by any
method but GET, HEAD and OPTIONS that reached the API as someone (a role refusal included) and
whose handler did not call `audit` is recorded by its method and path, with an outcome read from
the status, before that status goes out (so a client's next read of the log holds it). Requests
refused before authentication (401, 429, cross-site) are only logged, so anonymous noise cannot
fill the table. Without a store (passthrough) there is nothing to record in; the log line
remains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mxrelay import log
from mxrelay.store.audit import AuditEntry, record_audit
from mxrelay.store.backend import Database, describe_error
from mxrelay.web.roles import client_address, is_state_changing, principal_of

logger = logging.getLogger("mxrelay.web")

AUDITOR_KEY = "mxrelay.auditor"
AUDITED_KEY = "mxrelay.audited"
SHOWN_TARGETS = 100
"""Items of a target list written out; the rest are counted."""
SHOWN_IN_LOG = 200
"""Characters of a target in the log line (the table keeps more)."""


def outcome_of(status: int) -> str:
    if status == 403:
        return "denied"
    if status >= 500:
        return "error"
    return "refused" if status >= 400 else "ok"


def describe_target(target: str | Sequence[str]) -> str:
    """A target as the log keeps it: a text as it is, a list of ids joined, its tail counted."""
    if isinstance(target, str):
        return target
    shown = ",".join(str(item) for item in target[:SHOWN_TARGETS])
    rest = len(target) - SHOWN_TARGETS
    return f"{shown},… (+{rest} more)" if rest > 0 else shown


@dataclass(frozen=True, slots=True)
class Auditor:
    """Where entries go: the store (when the relay has one) and the log."""

    db: Callable[[], Database | None]
    clock: Callable[[], float] = time.time

    async def record(self, entry: AuditEntry) -> None:
        log.event(
            logger,
            "web.audit",
            user=entry.actor,
            client=entry.client,
            action=entry.action,
            target=entry.target[:SHOWN_IN_LOG],
            count=entry.count,
            outcome=entry.outcome,
        )
        database = self.db()
        if database is None:
            return
        try:
            await record_audit(database, entry)
        except Exception as exc:  # the action is done; losing its record must not fail it
            log.event(logger, "web.audit_failed", logging.ERROR, error=describe_error(exc))


async def audit(
    request: HTTPConnection,
    *,
    action: str,
    target: str | Sequence[str] = "",
    count: int | None = None,
    outcome: str = "ok",
) -> None:
    """Record what this request did (call it once the action has taken effect, or with the
    outcome it had). Does nothing outside an app with an `AuditTrail`."""
    scope = request.scope
    scope[AUDITED_KEY] = True
    auditor = scope.get(AUDITOR_KEY)
    if not isinstance(auditor, Auditor):
        return
    await auditor.record(_entry(scope, auditor, action, describe_target(target), count, outcome))


def _entry(
    scope: Scope, auditor: Auditor, action: str, target: str, count: int | None, outcome: str
) -> AuditEntry:
    principal = principal_of(scope)
    return AuditEntry(
        at=auditor.clock(),
        actor=principal.actor if principal else "anonymous",
        client=principal.client if principal else client_address(scope),
        action=action,
        target=target,
        count=count,
        outcome=outcome,
    )


class AuditTrail:
    """ASGI middleware: hands handlers the `Auditor` and records a state-changing request by an
    authenticated principal that no handler recorded (see the module's docstring)."""

    def __init__(self, app: ASGIApp, auditor: Auditor) -> None:
        self.app = app
        self.auditor = auditor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[AUDITOR_KEY] = self.auditor
        if scope["type"] != "http" or not is_state_changing(scope["method"]):
            await self.app(scope, receive, send)
            return
        answered = False

        async def send_capturing(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                # Recorded before the answer goes out: a client that has its answer (a 403,
                # say) finds the entry when it reads the audit log next.
                await self._unrecorded(scope, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_capturing)
        except Exception:
            if not answered:
                await self._unrecorded(scope, 500)
            raise
        if not answered:
            await self._unrecorded(scope, 500)

    async def _unrecorded(self, scope: Scope, status: int) -> None:
        if scope.get(AUDITED_KEY) or principal_of(scope) is None:
            return
        query = scope.get("query_string", b"").decode("latin-1")
        action = f"{scope['method']} {scope['path']}"
        await self.auditor.record(
            _entry(scope, self.auditor, action, query, None, outcome_of(status))
        )
