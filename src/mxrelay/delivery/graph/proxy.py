"""Which proxy outbound HTTPS goes through: one decision for the identity platform and for Graph.

MSAL's client (requests) and the Graph client (httpx) both ask `OutboundProxy.route(url)`, so they
never disagree, and `mxrelay config` and `mxrelay graph-test` print the same decision. The
variables mean what they mean to curl, urllib, requests and httpx:

- `https_proxy`/`HTTPS_PROXY`, else `all_proxy`/`ALL_PROXY`: the proxy (`http://` or `https://`;
  a value without a scheme is `http://`, as the libraries take it). The lowercase spelling wins,
  and an empty lowercase one switches the uppercase one off, as in urllib.
- `no_proxy`/`NO_PROXY`: comma-separated entries naming what is reached directly: `*` (everything);
  a host name, which also matches its subdomains (a leading dot changes nothing); `name:port`,
  only on that port; an IP address or a CIDR block, for hosts given as addresses (names are never
  resolved for the decision).

The clients run with `trust_env=False` and the environment is passed in, never read ambiently
(tests and `graph-test` give their own). The libraries' own environment readers only read the
process's environment, so the variables are read here; matching a host against one entry is
urllib's `proxy_bypass_environment`, given that entry instead of the process environment, and
CIDR blocks, which urllib does not know, are matched with `ipaddress` as requests does. Nothing
here shows a proxy's credentials: `shown` and every message leave them out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Not in typeshed (undocumented, but there since Python 2); requests imports it the same way.
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

PROXY_VARIABLES = ("https_proxy", "all_proxy")
"""Where the proxy for https:// URLs comes from, in order."""
NO_PROXY = "no_proxy"
SCHEMES = ("http", "https")


class ProxyProblem(ValueError):
    """A proxy variable that cannot be used; the message names it and never shows credentials."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy: the URL the clients are given (with any credentials) and how it is shown."""

    url: str = field(repr=False)
    variable: str
    shown: str

    @property
    def tls(self) -> bool:
        """An https:// proxy: the connection to it is TLS too (trusting what Graph's does)."""
        return self.url.lower().startswith("https:")


@dataclass(frozen=True, slots=True)
class Route:
    """How requests to one host go: through `proxy`, or directly; `reason` says why."""

    host: str
    port: int
    proxy: Proxy | None
    reason: str

    @property
    def url(self) -> str | None:
        """The proxy URL for the client (credentials included), None for a direct connection."""
        return self.proxy.url if self.proxy is not None else None

    def describe(self) -> str:
        if self.proxy is None:
            return f"direct ({self.reason})"
        return f"through {self.proxy.shown} ({self.reason})"


@dataclass(frozen=True, slots=True)
class OutboundProxy:
    """The proxy settings of the environment, and the decision for each URL."""

    proxy: Proxy | None = None
    no_proxy: tuple[str, ...] = ()
    no_proxy_variable: str = "NO_PROXY"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OutboundProxy:
        """Raises `ProxyProblem` for a proxy URL the clients cannot use (say, socks5://)."""
        proxy = None
        for name in PROXY_VARIABLES:
            found = _variable(environ, name)
            if found is not None:
                proxy = _proxy(*found)
                break
        no_proxy = _variable(environ, NO_PROXY)
        if no_proxy is None:
            return cls(proxy)
        variable, value = no_proxy
        entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
        return cls(proxy, entries, variable)

    def route(self, url: str) -> Route:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self.proxy is None:
            return Route(host, port, None, "no HTTPS_PROXY or ALL_PROXY is set")
        for entry in self.no_proxy:
            if bypasses(entry, host, port):
                return Route(host, port, None, f"{self.no_proxy_variable} has {entry!r}")
        return Route(host, port, self.proxy, self.proxy.variable)

    def describe(self) -> str:
        """The settings in one line, for `mxrelay config` (credentials left out)."""
        if self.proxy is None:
            return "no HTTPS_PROXY or ALL_PROXY is set"
        text = f"{self.proxy.variable}={self.proxy.shown}"
        if self.no_proxy:
            text += f", {self.no_proxy_variable}={','.join(self.no_proxy)}"
        return text


def bypasses(entry: str, host: str, port: int) -> bool:
    """Does one NO_PROXY entry send `host:port` past the proxy?"""
    address = _address(host)
    network = _network(entry)
    if address is not None and network is not None:
        return address.version == network.version and address in network
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return bool(proxy_bypass_environment(netloc, {"no": entry}))


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """The variable (as spelled) and its value: the lowercase spelling first, even when empty."""
    for spelling in (name.lower(), name.upper()):
        if spelling in environ:
            value = environ[spelling].strip()
            return (spelling, value) if value else None
    return None


def _proxy(variable: str, value: str) -> Proxy:
    url = value if "://" in value else f"http://{value}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme not in SCHEMES:
        raise ProxyProblem(
            f"{variable}: {scheme}:// proxies are not supported; expected an http:// or https:// "
            "proxy URL"
        )
    if not host or port == -1:
        raise ProxyProblem(f"{variable}: not a proxy URL; expected http://host:port")
    port = port or (443 if scheme == "https" else 80)
    where = f"[{host}]" if ":" in host else host
    shown = f"{scheme}://{where}:{port}"
    if parts.username or parts.password:
        shown += " (credentials not shown)"
    return Proxy(url, variable, shown)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None
