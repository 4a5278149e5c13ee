"""The "globally routable" classifier on its own (recipient-validation.md T80-T82)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.rcpt.routable import is_globally_routable, parse_ip


@pytest.mark.parametrize("text", ["8.8.8.8", "2a00:1450::1", "1.1.1.1", "::ffff:8.8.8.8"])
def test_t80_public_addresses_are_routable(text: str) -> None:
    assert is_globally_routable(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "127.255.0.9",
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.1.1",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.55",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "198.19.255.1",
    ],
)
def test_t81_ipv4_special_ranges_are_not_routable(text: str) -> None:
    assert not is_globally_routable(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "text",
    [
        "::1",
        "::",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fd00::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",  # NAT64 form of 10.0.0.1
        "2002:a00:1::1",  # 6to4 form of 10.0.0.1
    ],
)
def test_t82_ipv6_special_ranges_are_not_routable(text: str) -> None:
    assert not is_globally_routable(ipaddress.ip_address(text))


def test_embedded_public_ipv4_stays_routable() -> None:
    assert is_globally_routable(ipaddress.ip_address("64:ff9b::808:808"))


def test_extra_networks_make_an_address_routable() -> None:
    internal = ipaddress.ip_network("10.1.0.0/16")
    assert is_globally_routable(ipaddress.ip_address("10.1.2.3"), [internal])
    assert not is_globally_routable(ipaddress.ip_address("10.2.0.1"), [internal])
    # an IPv4-mapped address is judged by the IPv4 address it carries, extras included
    assert is_globally_routable(ipaddress.ip_address("::ffff:10.1.2.3"), [internal])


def test_parse_ip_accepts_an_exchange_written_as_an_address() -> None:
    assert parse_ip("192.0.2.55.") == ipaddress.ip_address("192.0.2.55")
    assert parse_ip("mx.example.net.") is None
    assert parse_ip(".") is None


@given(st.ip_addresses())
def test_mapped_form_agrees_with_ipv4(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if isinstance(address, ipaddress.IPv4Address):
        mapped = ipaddress.IPv6Address(f"::ffff:{address}")
        assert is_globally_routable(mapped) == is_globally_routable(address)
    else:
        assert isinstance(is_globally_routable(address), bool)
