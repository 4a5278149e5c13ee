"""Fixtures for the DNS package: the real DNS server and recipient checkers pointed at it.

Fixture mail hosts use the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32), which the test settings declare routable through MXRELAY_DNS_ROUTABLE_NETWORKS;
the classifier itself is tested on its own in test_routable.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import pytest

from mxrelay.config import Settings, load_settings
from mxrelay.metrics import Metrics
from mxrelay.model import RecipientVerdict
from mxrelay.rcpt.check import RecipientChecker
from tests.support.clocks import FakeClock
from tests.support.dns_server import DnsServer

ROUTABLE_FOR_TESTS = "192.0.2.0/24,198.51.100.0/24,203.0.113.0/24,2001:db8::/32"


NOT_FOUND = "Recipient address rejected: Domain not found (Bad destination mailbox address)"
TEMPFAIL = (
    "451 4.4.3 <user@{0}>: Recipient address rejected: "
    "Temporary DNS failure looking up {0}; try again later"
)


def well_formed(verdict: RecipientVerdict) -> RecipientVerdict:
    """T112: the enhanced class equals the code's first digit; the text opens with `<address>:`."""
    reply = verdict.reply
    assert reply.enhanced.split(".")[0] == str(reply.code)[0], reply
    assert reply.text.startswith("<"), reply
    assert ">: " in reply.text, reply
    return verdict


class CheckedRecipientChecker(RecipientChecker):
    """The real checker; every verdict it returns is held to T112 on the way out."""

    async def check(self, path: str, smtputf8: bool) -> RecipientVerdict:
        return well_formed(await super().check(path, smtputf8))

    async def explain(self, target: str, *, smtputf8: bool = True) -> RecipientVerdict:
        return well_formed(await super().explain(target, smtputf8=smtputf8))


def ok_mx(server: DnsServer, domain: str, address: str = "192.0.2.10") -> None:
    """`domain` MX 10 mx.`domain`, which has the A record `address`."""
    server.mx(domain, f"10 mx.{domain}")
    server.a(f"mx.{domain}", address)


class CheckerFactory(Protocol):
    def __call__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        metrics: Metrics | None = None,
        **env: str,
    ) -> RecipientChecker: ...


def settings_for(server: DnsServer, **env: str) -> Settings:
    """Settings aimed at `server`, short timeouts, the documentation ranges routable."""
    environ = {
        "MXRELAY_DNS_SERVERS": server.address,
        "MXRELAY_DNS_ROUTABLE_NETWORKS": ROUTABLE_FOR_TESTS,
        "MXRELAY_DNS_QUERY_TIMEOUT": "1s",
        "MXRELAY_DNS_RCPT_TIMEOUT": "3s",
    }
    environ.update(env)
    return load_settings(environ, hostname=lambda: "relay.example.net")


@pytest.fixture
async def make_checker(dns_server: DnsServer) -> AsyncIterator[CheckerFactory]:
    """Build checkers from MXRELAY_* overrides; each is closed at the end of the test."""
    made: list[RecipientChecker] = []

    def factory(
        *, clock: Callable[[], float] | None = None, metrics: Metrics | None = None, **env: str
    ) -> RecipientChecker:
        settings = settings_for(dns_server, **env)
        checker = CheckedRecipientChecker(
            settings.dns, settings.policy, metrics or Metrics(), clock=clock or time.monotonic
        )
        made.append(checker)
        return checker

    yield factory
    for checker in made:
        await checker.aclose()


@pytest.fixture
async def checker(make_checker: CheckerFactory) -> RecipientChecker:
    return make_checker()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
