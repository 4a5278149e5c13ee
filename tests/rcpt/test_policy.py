"""Row A12: typo list, disposable domains, allow and deny lists (T120-T123), on their own and
through the checker, where each refuses with 550 5.7.1 before any DNS query."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxrelay.config import ConfigError, PolicySettings, load_settings
from mxrelay.model import Reason
from mxrelay.rcpt.policy import DomainPolicy, load_typo_file
from tests.rcpt.conftest import CheckerFactory
from tests.support.dns_server import DnsServer, Fault


def policy_from(**env: str) -> DomainPolicy:
    return DomainPolicy.from_settings(load_settings(env).policy)


def test_all_policies_are_off_by_default() -> None:
    policy = DomainPolicy.from_settings(PolicySettings())
    for domain in ("mailinator.com", "gmial.com", "example.net"):
        assert policy.check(domain) is None


@pytest.mark.parametrize(
    "domain", ["mailinator.com", "a.b.mailinator.com", "MAILINATOR.com".lower()]
)
def test_t122_disposable_domains_match_on_the_registrable_domain(domain: str) -> None:
    verdict = policy_from(MXRELAY_POLICY_DISPOSABLE="true").check(domain)
    assert verdict is not None
    assert (verdict.code, verdict.status, verdict.reason) == (550, "7.1", Reason.POLICY)
    assert verdict.text == "Recipient address rejected: Disposable address not accepted"
    assert "mailinator.com" in verdict.evidence[0]


def test_disposable_entry_below_a_public_suffix() -> None:
    # the list names 0-mailer.dynv6.net; dynv6.net is a public suffix (PSL private section)
    policy = policy_from(MXRELAY_POLICY_DISPOSABLE="true")
    assert policy.check("0-mailer.dynv6.net") is not None
    assert policy.check("x.0-mailer.dynv6.net") is not None
    assert policy.check("someone-else.dynv6.net") is None


def test_t123_allowlist_wins_over_the_blocklist() -> None:
    policy = policy_from(
        MXRELAY_POLICY_DISPOSABLE="true", MXRELAY_POLICY_DISPOSABLE_ALLOW="mailinator.com"
    )
    assert policy.check("mailinator.com") is None
    assert policy.check("a.b.mailinator.com") is None
    assert policy.check("guerrillamail.com") is not None


def test_ordinary_domains_are_not_disposable() -> None:
    policy = policy_from(MXRELAY_POLICY_DISPOSABLE="true")
    for domain in ("example.net", "mail.example.org", "gmail.com"):
        assert policy.check(domain) is None


def test_deny_and_allow_lists_include_subdomains() -> None:
    deny = policy_from(MXRELAY_POLICY_DOMAIN_DENY="blocked.example.net")
    for domain in ("blocked.example.net", "sub.blocked.example.net"):
        verdict = deny.check(domain)
        assert verdict is not None
        assert verdict.text == "Recipient address rejected: Domain not accepted"
    assert deny.check("notblocked.example.net") is None
    allow = policy_from(MXRELAY_POLICY_DOMAIN_ALLOW="example.org,Bücher.example.net")
    assert allow.check("example.org") is None
    assert allow.check("mail.example.org") is None
    assert allow.check("xn--bcher-kva.example.net") is None
    assert allow.check("example.net") is not None


def test_typo_file(tmp_path: Path) -> None:
    typo_file = tmp_path / "typos.txt"
    typo_file.write_text(
        "# explicit list, reviewed\n\ngmial-like.example.net gmail.com\nHOTMIAL.example.org  hotmail.com # x\n",
        encoding="utf-8",
    )
    assert load_typo_file(typo_file) == {
        "gmial-like.example.net": "gmail.com",
        "hotmial.example.org": "hotmail.com",
    }
    policy = policy_from(MXRELAY_POLICY_TYPO_FILE=str(typo_file))
    verdict = policy.check("gmial-like.example.net")
    assert verdict is not None
    assert verdict.text == (
        "Recipient address rejected: Domain gmial-like.example.net looks like a typo; "
        "did you mean gmail.com?"
    )
    assert policy.check("sub.gmial-like.example.net") is None  # exact names only, no fuzzing


def test_typo_file_errors_name_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("only-one-word\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"MXRELAY_POLICY_TYPO_FILE: line 1 has 1 words"):
        load_typo_file(bad)
    with pytest.raises(ConfigError, match=r"MXRELAY_POLICY_TYPO_FILE: .* cannot be read"):
        load_typo_file(tmp_path / "missing.txt")


# --- through the checker -------------------------------------------------------------------------


async def test_t120_typo_domain_with_a_real_mx_passes_when_the_policy_is_off(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.mx("gmial-like.example.net", "10 mx.gmial-like.example.net")
    dns_server.a("mx.gmial-like.example.net", "192.0.2.120")
    verdict = await make_checker().check("<user@gmial-like.example.net>", False)
    assert str(verdict.reply) == "250 2.1.5 <user@gmial-like.example.net>: Recipient ok"


async def test_t121_typo_list_refuses_with_a_suggestion_and_no_dns(
    make_checker: CheckerFactory, dns_server: DnsServer, tmp_path: Path
) -> None:
    typo_file = tmp_path / "typos.txt"
    typo_file.write_text("gmial-like.example.net gmail.com\n", encoding="utf-8")
    checker = make_checker(MXRELAY_POLICY_TYPO_FILE=str(typo_file))
    verdict = await checker.check("<user@gmial-like.example.net>", False)
    assert str(verdict.reply) == (
        "550 5.7.1 <user@gmial-like.example.net>: Recipient address rejected: "
        "Domain gmial-like.example.net looks like a typo; did you mean gmail.com?"
    )
    assert (verdict.reason, verdict.stage) == (Reason.POLICY, "A12")
    assert dns_server.queries == []


@pytest.mark.parametrize("path", ["<u@mailinator.com>", "<u@a.b.mailinator.com>"])
async def test_t122_disposable_refused_without_dns(
    make_checker: CheckerFactory, dns_server: DnsServer, path: str
) -> None:
    checker = make_checker(MXRELAY_POLICY_DISPOSABLE="true")
    verdict = await checker.check(path, False)
    assert str(verdict.reply) == (
        f"550 5.7.1 {path}: Recipient address rejected: Disposable address not accepted"
    )
    assert dns_server.queries == []


async def test_t123_allowlisted_disposable_domain_goes_on_to_dns(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    dns_server.zone("example.com")
    dns_server.mx("disposable.example.com", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.123")
    checker = make_checker(
        MXRELAY_POLICY_DISPOSABLE="true",
        MXRELAY_POLICY_DISPOSABLE_ALLOW="disposable.example.com,mailinator.com",
    )
    assert (await checker.check("<u@disposable.example.com>", False)).accepted
    assert dns_server.queries_for("disposable.example.com", "MX")


async def test_policy_refusal_beats_a_dns_failure(
    make_checker: CheckerFactory, dns_server: DnsServer
) -> None:
    """Pinned choice 10: a definite 5xx wins over a temporary DNS failure on the same RCPT."""
    dns_server.fault("denied.example.net", Fault.SERVFAIL)
    checker = make_checker(MXRELAY_POLICY_DOMAIN_DENY="denied.example.net")
    verdict = await checker.check("<u@denied.example.net>", False)
    assert (verdict.reply.code, verdict.reply.enhanced) == (550, "5.7.1")
    assert dns_server.queries == []
