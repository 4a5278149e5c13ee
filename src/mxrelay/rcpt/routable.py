"""Whether an IP address is globally routable: the test behind address literals and MX hosts.

A recipient domain whose mail exchangers resolve only to loopback, private, link-local, shared
(CGNAT), documentation, benchmarking, multicast or reserved addresses cannot receive mail from the
Internet (recipient-validation.md, C3 and D3). IPv4 addresses embedded in IPv6 (IPv4-mapped
`::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address they carry,
so `::ffff:127.0.0.1` is as unroutable as `127.0.0.1`.

The standard library's `ipaddress` tables (IANA special-purpose registries) do the classification;
this module only adds the embedded forms, multicast (which `is_global` counts as global), and the
operator's extra networks (MXRELAY_DNS_ROUTABLE_NETWORKS) for internal MX hosts. Pure functions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def is_globally_routable(address: IPAddress, extra: Iterable[IPNetwork] = ()) -> bool:
    """True when mail could reach `address` over the Internet, or it lies in an `extra` network."""
    extra = tuple(extra)
    if any(address.version == network.version and address in network for network in extra):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_globally_routable(embedded, extra)
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def parse_ip(text: str) -> IPAddress | None:
    """`text` as an IP address (a trailing root dot tolerated, as in an MX exchange), else None."""
    try:
        return ipaddress.ip_address(text.removesuffix("."))
    except ValueError:
        return None
