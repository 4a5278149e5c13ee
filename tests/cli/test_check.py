"""`mxrelay check` against the real DNS server: the reply, the evidence, the exit status."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.dns_server import DnsServer, Fault
from tests.support.processes import run_mxrelay
from tests.support.relay_app import ROUTABLE_FOR_TESTS

pytestmark = pytest.mark.slow  # each test runs mxrelay in a process of its own


def mxrelay(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_mxrelay(*args, env=env)


def dns_env(dns: DnsServer) -> dict[str, str]:
    return {
        "MXRELAY_DNS_SERVERS": dns.address,
        "MXRELAY_DNS_ROUTABLE_NETWORKS": ROUTABLE_FOR_TESTS,
        "MXRELAY_DNS_QUERY_TIMEOUT": "1s",
    }


def test_check_accepts_and_shows_evidence(dns_server: DnsServer) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10", ttl=120)
    result = mxrelay(["check", "user@example.net", "example.net"], dns_env(dns_server))
    assert result.returncode == 0, result.stderr
    assert "user@example.net: 250 2.1.5" in result.stdout
    assert "example.net: 250 2.1.5" in result.stdout
    assert "mx.example.net" in result.stdout
    assert "192.0.2.10" in result.stdout


def test_check_permanent_refusal_exits_1(dns_server: DnsServer) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    dns_server.fault("gone.example.org", Fault.NXDOMAIN)
    result = mxrelay(["check", "ok@example.net", "u@gone.example.org"], dns_env(dns_server))
    assert result.returncode == 1
    assert (
        "u@gone.example.org: 550 5.1.2 <u@gone.example.org>: Recipient address rejected"
        in result.stdout
    )
    assert "Bad destination mailbox address" in result.stdout


def test_check_temporary_failure_exits_2(dns_server: DnsServer) -> None:
    dns_server.fault("broken.example.net", Fault.SERVFAIL)
    result = mxrelay(["check", "u@broken.example.net"], dns_env(dns_server))
    assert result.returncode == 2
    assert "451 4.4.3" in result.stdout


def test_permanent_beats_temporary_in_the_exit_status(dns_server: DnsServer) -> None:
    dns_server.fault("broken.example.net", Fault.SERVFAIL)
    result = mxrelay(["check", "u@broken.example.net", "u@localhost"], dns_env(dns_server))
    assert result.returncode == 1


def test_a_non_ascii_trusted_domain_is_trusted(dns_server: DnsServer) -> None:
    """MXRELAY_DNS_TRUSTED_DOMAINS in Unicode matches the recipient's domain, which is compared in
    A-label form, as the allow and deny lists are: accepted without DNS, subdomains included."""
    dns_server.fault("xn--bcher-kva.example.net", Fault.NXDOMAIN)
    dns_server.fault("mail.xn--bcher-kva.example.net", Fault.NXDOMAIN)
    env = {**dns_env(dns_server), "MXRELAY_DNS_TRUSTED_DOMAINS": "Bücher.example.net."}
    targets = [
        "jörg@bücher.example.net",
        "x@xn--bcher-kva.example.net",
        "x@mail.bücher.example.net",
    ]
    result = mxrelay(["check", *targets], env)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("250 2.1.5") == 3
    assert "xn--bcher-kva.example.net is a trusted domain" in result.stdout
    assert dns_server.queries == []  # control: nothing was looked up


def test_a_trusted_domain_idna_refuses_stops_start_up() -> None:
    result = mxrelay(["check", "x@example.net"], {"MXRELAY_DNS_TRUSTED_DOMAINS": "bü..example"})
    assert result.returncode == 2
    assert result.stderr == (
        "mxrelay: configuration error: MXRELAY_DNS_TRUSTED_DOMAINS: 'bü..example' has "
        "'bü..example', which is not a domain name; expected comma-separated domains\n"
    )


def test_the_target_and_the_evidence_reach_the_terminal_escaped(dns_server: DnsServer) -> None:
    result = mxrelay(["check", "\x1b]0;pwned\x07x@exa\x1b[2Jmple.net"], dns_env(dns_server))
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert result.stdout.startswith("\\x1b]0;pwned\\x07x@exa\\x1b[2Jmple.net: 5")
