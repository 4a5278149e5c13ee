"""The identity-platform half of the Microsoft stand-in: tenants, app registrations, tokens.

It answers what MSAL Python calls for an authority it does not know (instance discovery off):
`GET /{tenant}/v2.0/.well-known/openid-configuration` and `POST /{tenant}/oauth2/v2.0/token` with
`grant_type=client_credentials`. A client authenticates with its secret (form field or HTTP Basic,
MSAL sends both) or with a client assertion: a JWT signed with the registered certificate's key,
found by its `x5t#S256` (or `x5t`) thumbprint and verified with PyJWT (signature, audience =
the token endpoint, issuer = subject = client id, lifetime). Errors carry the AADSTS codes Entra
uses. Tokens are signed JWTs whose `roles` claim lists the app's granted application permissions,
which is how Graph (the other half, graph_standin.py) decides what the app may do.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class AppRegistration:
    """An app registration with its credentials and granted application permissions."""

    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    roles: tuple[str, ...] = ("Mail.Send",)
    disabled: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, document: object, *headers: tuple[str, str]) -> Reply:
        return cls(
            status,
            json.dumps(document).encode(),
            (("Content-Type", "application/json; charset=utf-8"), *headers),
        )


def aadsts(status: int, error: str, code: int, text: str) -> Reply:
    """An error answer shaped like Entra's (RFC 6749 §5.2 plus error_codes)."""
    return Reply.json(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {uuid.uuid4()} "
            f"Correlation ID: {uuid.uuid4()} Timestamp: 2026-01-01 00:00:00Z",
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class IdentityPlatform:
    """Tenants, apps and the token signing key. Not thread-safe: the stand-in holds its lock."""

    base_url: str
    graph_url: str
    tenant_id: str
    tenant_aliases: tuple[str, ...] = ()
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    token_lifetime: int = 3599
    revoked_before: float = 0.0
    tokens_issued: int = 0
    # Entra signs with RS256; mxrelay never verifies tokens, so the stand-in uses a P-256 key,
    # which is generated in microseconds rather than the tenths of a second RSA takes.
    signing_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def knows(self, tenant: str) -> bool:
        return tenant in (self.tenant_id, *self.tenant_aliases)

    def token_endpoint(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    def openid_configuration(self, tenant: str) -> Reply:
        if not self.knows(tenant):
            return aadsts(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        base = f"{self.base_url}/{tenant}"
        return Reply.json(
            200,
            {
                "token_endpoint": self.token_endpoint(tenant),
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.base_url}/{self.tenant_id}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
            },
        )

    def token(self, tenant: str, body: bytes, authorization: str | None) -> Reply:
        """The v2.0 token endpoint, client-credentials grant only."""
        if not self.knows(tenant):
            return aadsts(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return aadsts(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            return aadsts(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        problem = self._authenticate(app, tenant, form, authorization)
        if problem is not None:
            return problem
        if app.disabled:
            return aadsts(400, "unauthorized_client", 7000112, "Application is disabled.")
        if form.get("scope") != f"{self.graph_url}/.default":
            return aadsts(
                400,
                "invalid_scope",
                1002012,
                "The provided value for scope is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier.",
            )
        return Reply.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": self.issue(app),
            },
        )

    def _authenticate(
        self, app: AppRegistration, tenant: str, form: dict[str, str], authorization: str | None
    ) -> Reply | None:
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return aadsts(400, "invalid_request", 50027, "Invalid client assertion type.")
            return self._verify_assertion(app, tenant, assertion)
        secret = form.get("client_secret") or _basic_secret(authorization, app.client_id)
        if secret is None:
            return aadsts(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
            )
        if app.secret is None or not secrets.compare_digest(secret, app.secret):
            return aadsts(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID.",
            )
        return None

    def _verify_assertion(self, app: AppRegistration, tenant: str, assertion: str) -> Reply | None:
        certificate = app.certificate
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return aadsts(401, "invalid_client", 50027, "Invalid JWT token.")
        if certificate is None or not _thumbprint_matches(header, certificate):
            return aadsts(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application.",
            )
        algorithm = header.get("alg")
        if algorithm not in ("PS256", "RS256"):
            return aadsts(
                401, "invalid_client", 5002738, f"Unsupported signing algorithm {algorithm}."
            )
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=self.token_endpoint(tenant),
                issuer=app.client_id,
                options={"require": ["exp", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            return aadsts(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        except jwt.InvalidAudienceError:
            return aadsts(
                401, "invalid_client", 700021, "Client assertion audience claim does not match."
            )
        except jwt.PyJWTError:
            return aadsts(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            )
        if claims.get("sub") != app.client_id:
            return aadsts(401, "invalid_client", 700023, "Client assertion subject does not match.")
        return None

    def issue(self, app: AppRegistration) -> str:
        now = int(time.time())
        self.tokens_issued += 1
        claims: dict[str, Any] = {
            "aud": self.graph_url,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "appid": app.client_id,
            "tid": self.tenant_id,
            "uti": uuid.uuid4().hex,
            "issued_at": time.time(),
        }
        if app.roles:
            claims["roles"] = list(app.roles)
        return jwt.encode(claims, self.signing_key, algorithm="ES256")

    def check(self, token: str) -> dict[str, Any] | str:
        """The claims of a valid token, or why Graph refuses it."""
        try:
            claims = jwt.decode(
                token,
                self.signing_key.public_key(),
                algorithms=["ES256"],
                audience=self.graph_url,
            )
        except jwt.ExpiredSignatureError:
            return "Lifetime validation failed, the token is expired."
        except jwt.PyJWTError:
            return "Access token validation failure. Invalid audience or signature."
        if float(claims.get("issued_at", 0)) < self.revoked_before:
            return "Lifetime validation failed, the token is expired."
        return claims


def _basic_secret(authorization: str | None, client_id: str) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:]).decode("utf-8")
    except ValueError:
        return None
    user, _, password = decoded.partition(":")
    return unquote_plus(password) if unquote_plus(user) == client_id else None


def _thumbprint_matches(header: dict[str, Any], certificate: x509.Certificate) -> bool:
    sha256 = _b64url(certificate.fingerprint(hashes.SHA256()))
    sha1 = _b64url(certificate.fingerprint(hashes.SHA1()))
    # MSAL pads its base64url thumbprints and Entra accepts either form.
    given_sha256 = str(header.get("x5t#S256", "")).rstrip("=")
    given_sha1 = str(header.get("x5t", "")).rstrip("=")
    return given_sha256 == sha256 or given_sha1 == sha1
