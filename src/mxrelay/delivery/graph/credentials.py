"""Credentials and trust for Microsoft Graph: the client secret or certificate, the CA bundle.

What MSAL and the Graph client need before they can talk to anyone: the app's credential in the
form MSAL takes (a secret, a PEM key with its certificate, or a PFX file), checked here first so a
broken file is reported in plain words instead of a library traceback; the certificate
authorities outbound HTTPS trusts (`SSL_CERT_FILE`, else the system store); and the HTTP client
MSAL is given, with that trust and the proxy `proxy.py` chooses. Files are re-read on every call,
so a rotated secret or certificate is picked up without a restart. Nothing here ever prints a
secret: `Credential`'s repr shows its kind only.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from mxrelay.config import GraphSettings
from mxrelay.delivery.graph.outcome import GraphConfigurationFault
from mxrelay.delivery.graph.proxy import OutboundProxy
from mxrelay.model import GraphFault

SECRET_FILE_ENV = "MXRELAY_GRAPH_CLIENT_SECRET_FILE"
PASSWORD_FILE_ENV = "MXRELAY_GRAPH_CERTIFICATE_PASSWORD_FILE"


@dataclass(frozen=True, slots=True)
class TlsTrust:
    """Which certificate authorities outbound HTTPS trusts: the bundle named by `SSL_CERT_FILE`,
    else the system store."""

    cafile: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TlsTrust:
        return cls(environ.get("SSL_CERT_FILE") or None)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    def requests_verify(self) -> str | bool:
        """For requests (MSAL): the bundle, else the system store's bundle, else certifi."""
        if self.cafile:
            return self.cafile
        system = ssl.get_default_verify_paths().cafile
        if system:
            return system
        directory = ssl.get_default_verify_paths().capath
        return directory if directory else True


class MsalHttpClient:
    """The HTTP client MSAL is given: requests, with this relay's trust, proxy and timeouts.

    MSAL's own default (`verify=` on a requests Session) is not enough: requests lets the
    process's REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's setting, so the bundle is
    passed with every request instead, and so is the proxy `OutboundProxy` chose for the URL
    (the same decision as the Graph client's). One retry on connection failure, as MSAL's
    default does.
    """

    def __init__(
        self,
        trust: TlsTrust,
        timeout: tuple[float, float],
        proxy: OutboundProxy | None = None,
    ) -> None:
        self._verify = trust.requests_verify()
        self._timeout = timeout
        self._proxy = proxy or OutboundProxy()
        self._session = requests.Session()
        self._session.trust_env = False  # the environment is injected, not read ambiently
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def _options(self, url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["verify"] = self._verify
        kwargs.setdefault("timeout", self._timeout)
        proxy = self._proxy.route(url).url
        kwargs["proxies"] = {"https": proxy, "http": proxy} if proxy else {}
        return kwargs

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._session.get(url, **self._options(url, kwargs))

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._session.post(url, **self._options(url, kwargs))

    def close(self) -> None:
        self._session.close()


@dataclass(frozen=True, slots=True)
class Credential:
    """A client credential in the form MSAL takes. `repr` shows the kind only."""

    kind: Literal["secret", "certificate"]
    value: str | dict[str, Any] = field(repr=False)
    fingerprint: str = field(repr=False)
    thumbprint: str = ""
    not_after: datetime | None = None


def _fault(detail: str) -> GraphConfigurationFault:
    return GraphConfigurationFault(detail, fault=GraphFault.CREDENTIALS)


def load_credential(settings: GraphSettings, environ: Mapping[str, str]) -> Credential:
    """The secret or certificate, read now (files are re-read on every call: rotation)."""
    password = _password(settings, environ)
    if settings.certificate_file is not None:
        return _certificate(settings.certificate_file, password)
    secret_file = environ.get(SECRET_FILE_ENV)
    if secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise _fault(f"{SECRET_FILE_ENV} cannot be read ({exc.strerror})") from None
    elif settings.client_secret is not None:
        secret = settings.client_secret.get_secret_value()
    else:
        raise _fault("no client secret or certificate is configured")
    if not secret:
        raise _fault("the client secret is empty")
    return Credential("secret", secret, hashlib.sha256(secret.encode()).hexdigest())


def _password(settings: GraphSettings, environ: Mapping[str, str]) -> bytes | None:
    password_file = environ.get(PASSWORD_FILE_ENV)
    if password_file:
        try:
            return Path(password_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise _fault(f"{PASSWORD_FILE_ENV} cannot be read ({exc.strerror})") from None
    if settings.certificate_password is not None:
        return settings.certificate_password.get_secret_value().encode()
    return None


def _certificate(path: Path, password: bytes | None) -> Credential:
    """PEM (private key and certificate in one file) or PFX/PKCS#12, checked before MSAL sees it
    so that a broken file is reported in plain words."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise _fault(f"MXRELAY_GRAPH_CERTIFICATE_FILE cannot be read ({exc.strerror})") from None
    fingerprint = hashlib.sha256(content + (password or b"")).hexdigest()
    if b"-----BEGIN" in content:
        key, certificate = _load_pem(content, password)
        value: dict[str, Any] = {
            "private_key": _pem_block(content, b"PRIVATE KEY"),
            "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        }
        if password:
            value["passphrase"] = password.decode("utf-8", "surrogateescape")
    else:
        key, certificate = _load_pfx(content, password)
        value = {"private_key_pfx_path": str(path), "public_certificate": True}
        if password:
            value["passphrase"] = password.decode("utf-8", "surrogateescape")
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise _fault(
            "MXRELAY_GRAPH_CERTIFICATE_FILE: the certificate does not match the private key"
        )
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # the portal shows SHA-1
    return Credential(
        "certificate", value, fingerprint, thumbprint, certificate.not_valid_after_utc
    )


def _load_pem(content: bytes, password: bytes | None) -> tuple[PrivateKeyTypes, x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(content)
    except ValueError:
        raise _fault("MXRELAY_GRAPH_CERTIFICATE_FILE holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(
            _pem_block(content, b"PRIVATE KEY").encode(), password
        )
    except TypeError:
        raise _fault(
            "MXRELAY_GRAPH_CERTIFICATE_FILE: the private key is encrypted; set "
            "MXRELAY_GRAPH_CERTIFICATE_PASSWORD"
            if password is None
            else "MXRELAY_GRAPH_CERTIFICATE_FILE: the private key is not encrypted, but a password is set"
        ) from None
    except ValueError:
        raise _fault(
            "MXRELAY_GRAPH_CERTIFICATE_FILE holds no readable private key (or the password is wrong)"
        ) from None
    return key, certificates[0]


def _pem_block(content: bytes, label: bytes) -> str:
    """The first PEM block whose label ends with `label` (e.g. `ENCRYPTED PRIVATE KEY`)."""
    match = re.search(
        rb"-----BEGIN ([A-Z0-9 ]*" + label + rb")-----.*?-----END \1-----", content, re.DOTALL
    )
    if not match:
        raise _fault("MXRELAY_GRAPH_CERTIFICATE_FILE holds no PEM private key")
    return match.group(0).decode("ascii")


def _load_pfx(content: bytes, password: bytes | None) -> tuple[PrivateKeyTypes, x509.Certificate]:
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(content, password)
    except ValueError:
        raise _fault(
            "MXRELAY_GRAPH_CERTIFICATE_FILE is neither PEM nor a PFX file that opens with the "
            "configured password"
        ) from None
    if key is None or certificate is None:
        raise _fault(
            "MXRELAY_GRAPH_CERTIFICATE_FILE: the PFX file lacks the key or the certificate"
        )
    return key, certificate
