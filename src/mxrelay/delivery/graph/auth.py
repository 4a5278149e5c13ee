"""Access tokens for Microsoft Graph: MSAL's confidential client, with a secret or a certificate.

MSAL Python does the OAuth 2.0 client-credentials flow, signs the certificate's client assertion,
caches tokens and refreshes them before they expire (it treats a token with less than five minutes
left as expired, and refreshes long-lived ones at half-life). This module builds MSAL's
`ConfidentialClientApplication` from the settings and owns what MSAL leaves to its caller:

- trust and proxy: MSAL's default HTTP client (requests) ignores `SSL_CERT_FILE` and would read
  the proxy variables on its own; MSAL gets its own client that passes the bundle it names and the
  proxy `OutboundProxy` chooses with every request (`MsalHttpClient`), and the Graph client uses
  the same trust (`TlsTrust`) and the same proxy decision;
- authority: `MXRELAY_GRAPH_AUTHORITY` + "/" + tenant; instance discovery (a call to Microsoft's
  public cloud) is switched off for hosts MSAL does not know, so national clouds and a local
  stand-in work by configuration alone;
- failures: AADSTS errors become `GraphConfigurationFault` in words an operator can act on, network
  trouble becomes `UpstreamUnavailable`; the secret, the key and tokens never appear in either;
- recovery: after a failure the MSAL client is dropped and rebuilt on the next request, re-reading
  the secret or certificate file (rotation) and starting without MSAL's memory of the failure.

MSAL is synchronous, so each acquisition runs in a worker thread, one at a time. A token MSAL
gave is reused in memory for up to `TOKEN_REUSE` seconds (never within MSAL's five minutes of its
expiry): asking MSAL for every request cost a thread hand-over and a cache search under the lock,
which the concurrent requests queued on; once a minute still lets MSAL refresh as it chooses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from msal.exceptions import MsalError

from mxrelay.config import GraphSettings
from mxrelay.delivery.errors import UpstreamUnavailable
from mxrelay.delivery.graph.credentials import MsalHttpClient, TlsTrust, load_credential
from mxrelay.delivery.graph.outcome import GraphConfigurationFault
from mxrelay.delivery.graph.proxy import OutboundProxy
from mxrelay.metrics import GraphTokenFailure, GraphTokenSource, Metrics
from mxrelay.model import GraphFault

TOKEN_REUSE = 60.0
"""Seconds a token MSAL gave is handed out again without asking MSAL."""

MSAL_EXPIRY_MARGIN = 300.0
"""MSAL treats a token with less than this many seconds left as expired."""

CREDENTIAL_RECHECK = 300.0
"""Seconds between looks at the secret or certificate file for a rotated credential (a failed
token request looks at once)."""


# AADSTS codes → (fault kind, what the operator should do). Codes from Microsoft's "Entra
# authentication and authorization error codes" page; unknown codes get a generic sentence.
_AADSTS: dict[int, tuple[GraphFault, str]] = {
    7000215: (
        GraphFault.CREDENTIALS,
        "the client secret is wrong: use the secret's value, not its id",
    ),
    7000222: (
        GraphFault.CREDENTIALS,
        "the client secret has expired: create a new one and rotate it",
    ),
    700016: (
        GraphFault.CREDENTIALS,
        "no application with this client id exists in the tenant: check "
        "MXRELAY_GRAPH_CLIENT_ID and MXRELAY_GRAPH_TENANT_ID",
    ),
    90002: (GraphFault.CREDENTIALS, "the tenant does not exist: check MXRELAY_GRAPH_TENANT_ID"),
    900023: (GraphFault.CREDENTIALS, "the tenant id is malformed: check MXRELAY_GRAPH_TENANT_ID"),
    700027: (
        GraphFault.CREDENTIALS,
        "the certificate is not registered for this application (or the signature does not "
        "match): upload the certificate's public part to the app registration",
    ),
    700024: (
        GraphFault.CREDENTIALS,
        "the client assertion is outside its validity period: check this host's clock",
    ),
    7000112: (GraphFault.CREDENTIALS, "the application is disabled in the tenant"),
    7000229: (GraphFault.CREDENTIALS, "the application has no service principal in the tenant"),
    65001: (
        GraphFault.CONSENT,
        "admin consent is missing: grant admin consent for the Mail.Send application permission",
    ),
    650056: (GraphFault.CONSENT, "the application is misconfigured or lacks admin consent"),
    500011: (
        GraphFault.CREDENTIALS,
        "the tenant does not know the Graph resource: check MXRELAY_GRAPH_ENDPOINT matches "
        "MXRELAY_GRAPH_AUTHORITY's cloud",
    ),
    70011: (GraphFault.CREDENTIALS, "the scope was refused: check MXRELAY_GRAPH_ENDPOINT"),
    1002012: (GraphFault.CREDENTIALS, "the scope was refused: check MXRELAY_GRAPH_ENDPOINT"),
    53003: (GraphFault.CREDENTIALS, "a Conditional Access policy blocks this application"),
}
_TRANSIENT_ERRORS = ("temporarily_unavailable", "server_error")
_AADSTS_IN_TEXT = re.compile(r"AADSTS(\d+)")


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token; `repr` never shows it."""

    value: str = field(repr=False)
    expires_in: int
    source: GraphTokenSource

    def claims(self) -> dict[str, Any]:
        """The token's claims, read without verification (diagnostics only: graph-test and the
        probe look at `roles`). Empty when the token is not a JWT."""
        parts = self.value.split(".")
        if len(parts) != 3:
            return {}
        try:
            payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            claims = json.loads(payload)
        except ValueError:
            return {}
        return claims if isinstance(claims, dict) else {}

    def roles(self) -> tuple[str, ...] | None:
        """The application permissions granted to the app; None when the token cannot be read
        (a JWT without a `roles` claim means none are granted)."""
        claims = self.claims()
        if not claims:
            return None
        roles = claims.get("roles", [])
        return tuple(str(role) for role in roles) if isinstance(roles, list) else ()


class TokenSource(Protocol):
    async def token(self) -> AccessToken: ...

    async def invalidate(self, token: AccessToken) -> None:
        """Graph refused `token` (401): drop it, so the next `token()` fetches a new one."""
        ...

    async def reset(self) -> None:
        """Forget every cached token, so the next one reflects the permissions granted now."""
        ...

    async def aclose(self) -> None: ...


def authority_url(settings: GraphSettings) -> str:
    return f"{settings.authority.rstrip('/')}/{settings.tenant_id}"


def scope(settings: GraphSettings) -> str:
    return f"{settings.endpoint.rstrip('/')}/.default"


class MsalTokenSource:
    """Tokens from MSAL's `ConfidentialClientApplication`, one acquisition at a time."""

    def __init__(
        self,
        settings: GraphSettings,
        *,
        environ: Mapping[str, str],
        proxy: OutboundProxy | None = None,
        metrics: Metrics | None = None,
        application: Callable[..., Any] = msal.ConfidentialClientApplication,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._environ = environ
        self._metrics = metrics
        self._application = application
        self._trust = TlsTrust.from_environ(environ)
        self._proxy = proxy if proxy is not None else OutboundProxy.from_environ(environ)
        self._cache = msal.TokenCache()  # kept across rebuilds of the client
        self._app: Any = None
        self._fingerprint = ""
        self._clock = clock
        self._checked = -CREDENTIAL_RECHECK
        self._lock = asyncio.Lock()
        self._held: tuple[AccessToken, float] | None = None
        """The last token MSAL gave and until when (monotonic) it is handed out again."""

    async def token(self) -> AccessToken:
        token = self._reusable() or await self._from_msal()
        if self._metrics is not None:
            self._metrics.graph_tokens.labels(source=token.source).inc()
        return token

    def _reusable(self) -> AccessToken | None:
        held = self._held
        return held[0] if held is not None and self._clock() < held[1] else None

    async def _from_msal(self) -> AccessToken:
        async with self._lock:
            # Requests that queued on the lock while one asked MSAL take the token it got.
            if (reused := self._reusable()) is not None:
                return reused
            try:
                token = await asyncio.to_thread(self._acquire)
            except GraphConfigurationFault:
                self._count_failure(GraphTokenFailure.CONFIGURATION)
                raise
            except UpstreamUnavailable:
                self._count_failure(GraphTokenFailure.UNAVAILABLE)
                raise
            reuse = min(TOKEN_REUSE, token.expires_in - MSAL_EXPIRY_MARGIN)
            again = replace(token, source=GraphTokenSource.CACHE)  # handed out again: cached
            self._held = (again, self._clock() + reuse) if reuse > 0 else None
        return token

    async def invalidate(self, token: AccessToken) -> None:
        async with self._lock:
            self._held = None
            stale = [
                entry
                for entry in self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)
                if entry.get("secret") == token.value
            ]
            for entry in stale:
                self._cache.remove_at(entry)

    async def reset(self) -> None:
        """Forget the client and every cached token (the probe after a permission fault wants
        a token issued now, with the roles granted now)."""
        async with self._lock:
            self._held = None
            self._drop()
            self._cache = msal.TokenCache()

    async def aclose(self) -> None:
        async with self._lock:
            self._held = None
            self._drop()

    def _count_failure(self, kind: GraphTokenFailure) -> None:
        if self._metrics is not None:
            self._metrics.graph_token_failures.labels(kind=kind).inc()

    # --- in the worker thread -------------------------------------------------------------

    def _acquire(self) -> AccessToken:
        app = self._client()
        try:
            result = app.acquire_token_for_client(scopes=[scope(self._settings)])
        except (OSError, MsalError) as exc:  # requests' errors are OSErrors
            self._drop()
            raise self._unreachable(exc) from None
        except ValueError:  # a token endpoint answering something that is not JSON
            self._drop()
            raise UpstreamUnavailable(
                f"the identity platform at {self._host()} answered the token request with "
                "something that is not a token response"
            ) from None
        if isinstance(result, dict) and result.get("access_token"):
            return AccessToken(
                str(result["access_token"]),
                int(result.get("expires_in", 0)),
                GraphTokenSource.CACHE
                if result.get("token_source") == "cache"
                else GraphTokenSource.IDENTITY_PROVIDER,
            )
        self._drop()
        raise token_error(result if isinstance(result, dict) else {}, self._host())

    def _client(self) -> Any:
        now = self._clock()
        if self._app is not None and now - self._checked < CREDENTIAL_RECHECK:
            return self._app
        credential = load_credential(self._settings, self._environ)
        self._checked = now
        if self._app is not None and credential.fingerprint == self._fingerprint:
            return self._app
        self._drop()
        settings = self._settings
        host = urlsplit(settings.authority).hostname or ""
        timeout = (settings.connect_timeout.total_seconds(), settings.timeout.total_seconds())
        try:
            app = self._application(
                settings.client_id,
                client_credential=credential.value,
                authority=authority_url(settings),
                token_cache=self._cache,
                http_client=MsalHttpClient(self._trust, timeout, self._proxy),
                instance_discovery=host in WELL_KNOWN_AUTHORITY_HOSTS,
            )
        except (OSError, MsalError) as exc:
            raise self._unreachable(exc) from None
        except ValueError:
            raise GraphConfigurationFault(
                f"the authority {authority_url(settings)} did not describe the tenant (OpenID "
                "discovery failed): check MXRELAY_GRAPH_TENANT_ID and MXRELAY_GRAPH_AUTHORITY",
                fault=GraphFault.CREDENTIALS,
            ) from None
        self._app, self._fingerprint = app, credential.fingerprint
        return app

    def _drop(self) -> None:
        app, self._app = self._app, None
        if app is not None:
            app.http_client.close()

    def _host(self) -> str:
        return urlsplit(self._settings.authority).hostname or self._settings.authority

    def _unreachable(self, exc: BaseException) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"the identity platform at {self._host()} could not be reached or failed "
            f"({type(exc).__name__}); messages wait in the queue"
        )


def token_error(
    result: Mapping[str, Any], host: str
) -> GraphConfigurationFault | UpstreamUnavailable:
    """MSAL's error response in words: AADSTS code, what it means, what to do. Microsoft's own
    error_description is not repeated (it carries trace ids and may quote request details)."""
    error = str(result.get("error") or "unknown_error")
    codes = result.get("error_codes")
    code: int | None = None
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        code = codes[0]
    else:
        match = _AADSTS_IN_TEXT.search(str(result.get("error_description", "")))
        code = int(match.group(1)) if match else None
    if error in _TRANSIENT_ERRORS:
        return UpstreamUnavailable(
            f"the identity platform at {host} is temporarily unavailable ({error})"
        )
    label = f"AADSTS{code}" if code is not None else error
    fault, words = _AADSTS.get(
        code or -1,
        (GraphFault.CREDENTIALS, "check the app registration, its credential and the tenant"),
    )
    return GraphConfigurationFault(
        f"the identity platform refused the token request ({label}, {error}): {words}",
        fault=fault,
        error_code=label,
    )
