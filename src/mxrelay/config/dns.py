"""The recipient checks' settings: DNS (name servers, time budgets, limits, what counts as
routable, the verdict cache) and the recipient policy (disposable, typo, allowed and denied
domains).

Read by `dns/`; the rule between the cache's TTL bounds is `load.py`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator

from mxrelay.config.values import (
    Addresses,
    Domains,
    Duration,
    NameServers,
    Networks,
    SettingsGroup,
    duration_setting,
    int_setting,
    setting,
)


def _reply_code(value: object) -> object:
    """`"450"` from the environment as the integer a Literal[550, 450] field compares with."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


class DnsSettings(SettingsGroup):
    servers: NameServers = setting(
        (),
        env="MXRELAY_DNS_SERVERS",
        form="comma-separated host[:port] IP addresses",
        help="Name servers to ask; empty means the system resolver's (its search list is never used).",
    )
    query_timeout: Duration = duration_setting(
        "5s",
        env="MXRELAY_DNS_QUERY_TIMEOUT",
        least="100ms",
        most="1m",
        help="Time allowed for one DNS query (UDP, then TCP on truncation).",
    )
    rcpt_timeout: Duration = duration_setting(
        "10s",
        env="MXRELAY_DNS_RCPT_TIMEOUT",
        least="100ms",
        most="5m",
        help="Time allowed for all DNS work behind one RCPT; past it, 451 4.4.3.",
    )
    mx_limit: int = int_setting(
        10,
        env="MXRELAY_DNS_MX_LIMIT",
        least=1,
        most=100,
        help="MX exchanges examined at most before the verdict is 451 4.4.3 (cap hit).",
    )
    cname_limit: int = int_setting(
        8,
        env="MXRELAY_DNS_CNAME_LIMIT",
        least=1,
        most=32,
        help="CNAME hops followed; a longer chain or a loop is a temporary failure.",
    )
    nxdomain_code: Annotated[Literal[550, 450], BeforeValidator(_reply_code)] = setting(
        550,
        env="MXRELAY_NXDOMAIN_CODE",
        form="550 or 450",
        help="Reply code for a domain that does not exist (450 4.1.2 for flaky resolvers).",
    )
    nxdomain_address_fallback: bool = setting(
        False,
        env="MXRELAY_DNS_NXDOMAIN_ADDRESS_FALLBACK",
        form="true or false",
        help="Tolerate broken servers: after NXDOMAIN for MX, accept if A/AAAA exist (Postfix-like).",
    )
    allow_mx_ip: bool = setting(
        False,
        env="MXRELAY_ALLOW_MX_IP",
        form="true or false",
        help="Accept an MX exchange written as an IP address if that address is routable.",
    )
    routable_networks: Networks = setting(
        "",
        env="MXRELAY_DNS_ROUTABLE_NETWORKS",
        form="comma-separated CIDRs",
        help="Extra networks that count as routable (internal MX hosts in private deployments).",
    )
    self_addresses: Addresses = setting(
        "",
        env="MXRELAY_DNS_SELF_ADDRESSES",
        form="comma-separated IP addresses",
        help="The relay's own addresses; an MX pointing only at them is a loop (550 5.4.6).",
    )
    ipv6: bool = setting(
        True,
        env="MXRELAY_DNS_IPV6",
        form="true or false",
        help="Count IPv6-only MX hosts as usable (turn off when the delivery path has no IPv6).",
    )
    trusted_domains: Domains = setting(
        "",
        env="MXRELAY_DNS_TRUSTED_DOMAINS",
        form="comma-separated domains",
        help="Domains accepted without DNS (internal or explicitly routed); subdomains included.",
    )
    allow_test_tld: bool = setting(
        False,
        env="MXRELAY_DNS_ALLOW_TEST_TLD",
        form="true or false",
        help="Look up .test domains instead of refusing them (labs and test environments).",
    )
    allow_address_literals: bool = setting(
        False,
        env="MXRELAY_DNS_ALLOW_ADDRESS_LITERALS",
        form="true or false",
        help="Accept user@[public-ip] recipients (otherwise 550 5.7.1).",
    )
    cache_size: int = int_setting(
        10_000,
        env="MXRELAY_DNS_CACHE_SIZE",
        least=1,
        most=10_000_000,
        help="Verdicts kept in the cache at most (least recently used go first).",
    )
    cache_min_ttl: Duration = duration_setting(
        "5s",
        env="MXRELAY_DNS_CACHE_MIN_TTL",
        least="0s",
        most="1d",
        help="Shortest life of a positive verdict (a TTL of 0 is still not reused across RCPTs).",
    )
    cache_max_ttl: Duration = duration_setting(
        "24h",
        env="MXRELAY_DNS_CACHE_MAX_TTL",
        least="0s",
        most="7d",
        help="Longest life of a positive verdict.",
    )
    negative_max_ttl: Duration = duration_setting(
        "15m",
        env="MXRELAY_DNS_NEGATIVE_MAX_TTL",
        least="0s",
        most="1d",
        help="Longest life of an NXDOMAIN/NODATA verdict (RFC 2308 SOA minimum, capped).",
    )
    transient_ttl: Duration = duration_setting(
        "30s",
        env="MXRELAY_DNS_TRANSIENT_TTL",
        least="0s",
        most="5m",
        help="Life of a temporary-failure verdict (always 4xx; RFC 2308 7.1 caps it at 5 minutes).",
    )
    serve_stale: Duration = duration_setting(
        "0s",
        env="MXRELAY_DNS_SERVE_STALE",
        least="0s",
        most="7d",
        note="0s = off",
        help="Serve an expired positive verdict this long when its refresh fails temporarily.",
    )


class PolicySettings(SettingsGroup):
    disposable: bool = setting(
        False,
        env="MXRELAY_POLICY_DISPOSABLE",
        form="true or false",
        help="Refuse disposable-address domains (550 5.7.1), matched on the registrable domain.",
    )
    disposable_allow: Domains = setting(
        "",
        env="MXRELAY_POLICY_DISPOSABLE_ALLOW",
        form="comma-separated domains",
        help="Domains never treated as disposable (takes precedence over the list).",
    )
    typo_file: Path | None = setting(
        None,
        env="MXRELAY_POLICY_TYPO_FILE",
        form="a file of 'typo-domain suggestion' lines",
        help="Explicit typo domains, refused with 550 5.7.1 and a 'did you mean' suggestion.",
    )
    domain_allow: Domains = setting(
        "",
        env="MXRELAY_POLICY_DOMAIN_ALLOW",
        form="comma-separated domains",
        help="When set, only these recipient domains (and subdomains) are accepted.",
    )
    domain_deny: Domains = setting(
        "",
        env="MXRELAY_POLICY_DOMAIN_DENY",
        form="comma-separated domains",
        help="Recipient domains (and subdomains) refused with 550 5.7.1.",
    )
