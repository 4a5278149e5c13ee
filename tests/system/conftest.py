"""What the system tests share: a scratch directory for a relay's store and logs, and the DNS
zones the Graph-mode relays check recipients against."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dns_server import DnsServer


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mxrelay-system-") as path:
        yield Path(path)


@pytest.fixture
def dns(dns_server: DnsServer) -> DnsServer:
    """example.net and example.org with a mail host each; nx.example.net has no records (NXDOMAIN,
    refused with 550 5.1.2)."""
    for domain in ("example.net", "example.org"):
        dns_server.mx(domain, f"10 mx.{domain}")
        dns_server.a(f"mx.{domain}", "192.0.2.10")
    return dns_server
