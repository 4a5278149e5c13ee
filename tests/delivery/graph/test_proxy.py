"""Outbound HTTPS and its proxy: HTTPS_PROXY, ALL_PROXY and NO_PROXY, one decision for both clients.

The decision itself is pure (`OutboundProxy.route`) and is tested as such for every form of the
variables. Then the real thing on loopback: MSAL (requests) fetching tokens and Graph (httpx)
sending, against the HTTPS stand-in, through a real CONNECT proxy (proxy.py) that records what it
tunnelled. The identity platform is named `localhost` and Graph `127.0.0.1`, so the two hosts
can be routed apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mxrelay.app import StartupError
from mxrelay.delivery.errors import UpstreamUnavailable
from mxrelay.delivery.graph.proxy import OutboundProxy, ProxyProblem
from mxrelay.delivery.transport import RecipientStatus
from mxrelay.model import QueueState
from tests.support.connect_proxy import ConnectProxy
from tests.support.dns_server import DnsServer
from tests.support.graph_harness import graph_transport, job, message, relay_environ
from tests.support.graph_relay import graph_relay_environ, submit
from tests.support.graph_standin import MAILBOX, GraphStandIn
from tests.support.processes import free_port
from tests.support.relay_app import entry_in_state, running_relay

PROXY = "http://proxy.example.net:3128"


def route(environ: dict[str, str], url: str = "https://graph.example.net/v1.0/") -> str:
    return OutboundProxy.from_environ(environ).route(url).describe()


# --- the decision ---------------------------------------------------------------------------


def test_without_a_proxy_variable_everything_is_direct() -> None:
    assert route({}) == "direct (no HTTPS_PROXY or ALL_PROXY is set)"
    assert route({"NO_PROXY": "example.net", "HTTP_PROXY": PROXY}) == (
        "direct (no HTTPS_PROXY or ALL_PROXY is set)"
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTPS_PROXY": PROXY}, f"through {PROXY} (HTTPS_PROXY)"),
        ({"https_proxy": PROXY}, f"through {PROXY} (https_proxy)"),
        ({"HTTPS_PROXY": "http://other:1", "https_proxy": PROXY}, f"through {PROXY} (https_proxy)"),
        ({"ALL_PROXY": PROXY}, f"through {PROXY} (ALL_PROXY)"),
        ({"all_proxy": PROXY, "HTTPS_PROXY": "http://h:8080"}, "through http://h:8080 (HTTPS_PROXY)"),
        ({"HTTPS_PROXY": "proxy.example.net:3128"}, f"through {PROXY} (HTTPS_PROXY)"),
        ({"HTTPS_PROXY": "https://proxy.example.net"}, "through https://proxy.example.net:443 (HTTPS_PROXY)"),
        ({"HTTPS_PROXY": "http://[2001:db8::1]:3128"}, "through http://[2001:db8::1]:3128 (HTTPS_PROXY)"),
        # an empty lowercase variable switches the uppercase one off, as in urllib and curl
        ({"https_proxy": "", "HTTPS_PROXY": PROXY}, "direct (no HTTPS_PROXY or ALL_PROXY is set)"),
        ({"https_proxy": "", "HTTPS_PROXY": PROXY, "ALL_PROXY": PROXY}, f"through {PROXY} (ALL_PROXY)"),
    ],
)  # fmt: skip
def test_which_proxy(environ: dict[str, str], expected: str) -> None:
    assert route(environ) == expected


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("graph.example.net", "https://graph.example.net/", True),  # the host
        ("GRAPH.example.net", "https://graph.example.net/", True),
        ("example.net", "https://graph.example.net/", True),  # a domain: its subdomains
        (".example.net", "https://graph.example.net/", True),  # a leading dot changes nothing
        (".example.net", "https://example.net/", True),
        ("xample.net", "https://graph.example.net/", False),  # suffixes end at a dot
        ("example.org", "https://graph.example.net/", False),
        ("login.example.net", "https://graph.example.net/", False),
        ("graph.example.net:443", "https://graph.example.net/", True),  # the default port
        ("graph.example.net:8443", "https://graph.example.net:8443/", True),  # name:port
        ("graph.example.net:8443", "https://graph.example.net/", False),
        ("10.0.0.0/8", "https://10.20.30.40/", True),  # a CIDR block
        ("10.0.0.0/8", "https://11.0.0.1/", False),
        ("10.1.2.3", "https://10.1.2.3/", True),  # an address
        ("10.1.2.3:8443", "https://10.1.2.3:8443/", True),
        ("10.1.2.3:8443", "https://10.1.2.3/", False),
        ("fd00::/8", "https://[fd00::1]/", True),  # IPv6
        ("[::1]", "https://[::1]:8443/", True),
        ("fd00::/8", "https://10.0.0.1/", False),
        ("10.0.0.0/8", "https://ten.example.net/", False),  # names are never resolved
        ("*", "https://graph.example.net/", True),  # everything
        ("example.org, ,*", "https://graph.example.net/", True),
        ("example.org,graph.example.net", "https://graph.example.net/", True),
    ],
)
def test_no_proxy_forms(no_proxy: str, url: str, bypassed: bool) -> None:
    chosen = OutboundProxy.from_environ({"HTTPS_PROXY": PROXY, "NO_PROXY": no_proxy}).route(url)
    assert (chosen.url is None) is bypassed
    if bypassed:
        assert chosen.describe().startswith("direct (NO_PROXY has ")


def test_lowercase_no_proxy_wins() -> None:
    environ = {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.net", "no_proxy": "example.org"}
    assert route(environ) == f"through {PROXY} (HTTPS_PROXY)"
    assert route(environ, "https://example.org/") == "direct (no_proxy has 'example.org')"


def test_credentials_are_used_never_shown() -> None:
    proxy = OutboundProxy.from_environ({"HTTPS_PROXY": "http://relay:s3cr%2Ft@proxy:3128"})
    chosen = proxy.route("https://graph.example.net/")
    assert chosen.url == "http://relay:s3cr%2Ft@proxy:3128"
    assert chosen.describe() == "through http://proxy:3128 (credentials not shown) (HTTPS_PROXY)"
    for text in (chosen.describe(), proxy.describe(), repr(proxy), repr(chosen)):
        assert "s3cr" not in text


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("socks5://user:s3cret@127.0.0.1:1080", "HTTPS_PROXY: socks5:// proxies are not supported"),
        ("http://user:s3cret@proxy:port", "HTTPS_PROXY: not a proxy URL"),
        ("http://", "HTTPS_PROXY: not a proxy URL"),
    ],
)
def test_a_proxy_the_clients_cannot_use_is_refused(value: str, problem: str) -> None:
    with pytest.raises(ProxyProblem) as raised:
        OutboundProxy.from_environ({"HTTPS_PROXY": value})
    assert str(raised.value).startswith(problem)
    assert "s3cret" not in str(raised.value)


async def test_the_relay_does_not_start_in_graph_mode_with_such_a_proxy(
    tmp_path: Path,
) -> None:
    with GraphStandIn.running(tmp_path / "standin") as standin:
        environ = relay_environ(
            standin,
            HTTPS_PROXY="socks5://127.0.0.1:1080",
            MXRELAY_DATABASE_URL=f"sqlite:///{tmp_path / 'relay.db'}",
        )
        with pytest.raises(StartupError, match="HTTPS_PROXY: socks5:// proxies are not supported"):
            async with running_relay(environ):
                pass


# --- through a real CONNECT proxy -------------------------------------------------------------


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ConnectProxy]:
    with ConnectProxy.running(tmp_path / "proxy") as running:
        yield running


def two_hosts(standin: GraphStandIn, **extra: str) -> dict[str, str]:
    """The identity platform as `localhost`, Graph as `127.0.0.1`: the same stand-in."""
    return relay_environ(standin, MXRELAY_GRAPH_AUTHORITY=standin.identity_at("localhost"), **extra)


async def deliver_one(standin: GraphStandIn, environ: dict[str, str]) -> None:
    async with graph_transport(standin, environ=environ) as transport:
        outcome = await transport.deliver(job(message()))
    assert [r.status for r in outcome.recipients] == [RecipientStatus.DELIVERED]
    assert len(standin.token_requests()) == 1
    assert len(standin.sent()) == 1


@pytest.mark.slow
async def test_without_no_proxy_both_hosts_are_tunnelled(
    standin: GraphStandIn, proxy: ConnectProxy
) -> None:
    await deliver_one(standin, two_hosts(standin, HTTPS_PROXY=proxy.url))
    identity, graph = f"localhost:{standin.port}", f"127.0.0.1:{standin.port}"
    assert set(proxy.wait_for_tunnels(identity, graph)) == {identity, graph}


@pytest.mark.parametrize("variable", ["ALL_PROXY", "https_proxy"])
@pytest.mark.slow
async def test_all_proxy_and_lowercase_variables_are_honoured(
    standin: GraphStandIn, proxy: ConnectProxy, variable: str
) -> None:
    await deliver_one(standin, two_hosts(standin, **{variable: proxy.url}))
    assert set(proxy.tunnels()) == {f"localhost:{standin.port}", f"127.0.0.1:{standin.port}"}


@pytest.mark.slow
async def test_no_proxy_naming_the_identity_platform_sends_only_graph_through_the_proxy(
    standin: GraphStandIn, proxy: ConnectProxy
) -> None:
    await deliver_one(standin, two_hosts(standin, HTTPS_PROXY=proxy.url, NO_PROXY="localhost"))
    assert proxy.tunnels() == [f"127.0.0.1:{standin.port}"]  # MSAL went direct


@pytest.mark.parametrize("form", ["127.0.0.1", "127.0.0.0/8", "127.0.0.1:{port}", "example.org,*"])
@pytest.mark.slow
async def test_no_proxy_naming_graph_sends_only_the_identity_platform_through_the_proxy(
    standin: GraphStandIn, proxy: ConnectProxy, form: str
) -> None:
    no_proxy = form.format(port=standin.port)
    await deliver_one(standin, two_hosts(standin, HTTPS_PROXY=proxy.url, NO_PROXY=no_proxy))
    expected = [] if "*" in form else [f"localhost:{standin.port}"]
    assert proxy.tunnels() == expected


@pytest.mark.slow
async def test_no_proxy_on_another_port_does_not_bypass(
    standin: GraphStandIn, proxy: ConnectProxy
) -> None:
    environ = two_hosts(standin, HTTPS_PROXY=proxy.url, NO_PROXY=f"127.0.0.1:{free_port()}")
    await deliver_one(standin, environ)
    assert set(proxy.tunnels()) == {f"localhost:{standin.port}", f"127.0.0.1:{standin.port}"}


@pytest.mark.slow
async def test_an_https_proxy_with_credentials_is_trusted_as_graph_is(
    standin: GraphStandIn, tmp_path: Path
) -> None:
    """TLS to the proxy too (trusting SSL_CERT_FILE, as Graph's connection does), with basic-auth
    credentials from the URL, for both clients."""
    certificate = standin.ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "proxy-cert.pem", tmp_path / "proxy-key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    with ConnectProxy.running(
        tmp_path / "proxy", credentials="relay:pr0xy-pw", tls=(cert_file, key_file)
    ) as proxy:
        assert proxy.url.startswith("https://relay:pr0xy-pw@")
        await deliver_one(standin, two_hosts(standin, HTTPS_PROXY=proxy.url))
        tunnels = proxy.tunnels()
    assert set(tunnels) == {f"localhost:{standin.port}", f"127.0.0.1:{standin.port}"}


async def test_an_unreachable_proxy_fails_the_token_request_unless_no_proxy_matches(
    standin: GraphStandIn,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with graph_transport(standin, environ=two_hosts(standin, HTTPS_PROXY=dead)) as transport:
        with pytest.raises(UpstreamUnavailable, match="identity platform at localhost"):
            await transport.deliver(job(message()))
    await deliver_one(standin, two_hosts(standin, HTTPS_PROXY=dead, NO_PROXY="localhost,127.0.0.1"))


async def test_mail_is_delivered_when_no_proxy_names_both_hosts(
    standin: GraphStandIn, dns_server: DnsServer, tmp_path: Path
) -> None:
    """The relay as deployed: a proxy for the rest of the world that cannot reach the hosts
    NO_PROXY names (a sovereign cloud reached directly, a local stand-in)."""
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    environ = graph_relay_environ(
        standin,
        dns_server,
        tmp_path,
        HTTPS_PROXY=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        NO_PROXY=f"127.0.0.1:{standin.port}",
    )
    data = message(sender=MAILBOX)
    async with running_relay(environ) as relay:
        message_id, _ = await submit(relay, MAILBOX, ["alice@example.net"], data)
        await standin.arrived(1)
        entry = await entry_in_state(relay, message_id, QueueState.DELIVERED, within=10)
    assert entry.attempts == 1
