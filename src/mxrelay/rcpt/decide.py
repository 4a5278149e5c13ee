"""Stages B-D of recipient-domain validation as a sans-I/O generator.

`decide(domain, options)` yields `Query` values and receives `Answer` values (as httpx's auth flows
do with requests), and returns a `Verdict`. It never touches a socket or a clock: `check.py` drives
it with the real resolver inside the per-RCPT budget, tests drive it with hand-made answers.

The rows it implements (recipient-validation.md section 2):
- B: the MX query. NXDOMAIN → 550 5.1.2 (or 450 4.1.2); a null MX alone → 556 5.1.10 without any
  address lookup; `0 .` mixed with real MX → the null entry is ignored with a warning; NODATA →
  stage D; any temporary failure, CNAME loop or over-long chain → 451 4.4.3.
- C: exchanges in preference order (ties by name, so results are repeatable), at most `mx_limit`;
  the first usable one (a globally routable A/AAAA that is not the relay itself) accepts. One that
  resolves to the relay discards itself and every less preferred exchange (RFC 5321 5.1); if nothing
  more preferred was usable, that is a loop (550 5.4.6). Else an unknown exchange or the cap → 451,
  and only definite failures → 550 5.1.2.
- D: implicit MX (A/AAAA of the domain itself): routable → 250, temporary trouble without a
  positive result → 451, nothing or only non-routable addresses → 550 5.1.2. SPF is never asked.

CNAMEs: a recursive resolver returns the chain in the answer; when a server hands back a CNAME
without following it (no data and no SOA for the target), the target is asked for. A loop, or more
than `cname_limit` hops in all, is a temporary failure. Lifetimes: a positive verdict lives for the
minimum TTL over every RRset it relied on; a negative one also takes RFC 2308 negative TTLs, and is
not cacheable when any of them came without an SOA.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

from mxrelay.model import DnsStatus, RdType
from mxrelay.rcpt import verdict as v
from mxrelay.rcpt.answer import Answer, Cname, Query, Record
from mxrelay.rcpt.routable import IPAddress, IPNetwork, is_globally_routable, parse_ip
from mxrelay.rcpt.verdict import Verdict

log = logging.getLogger(__name__)

Flow = Generator[Query, Answer, Verdict]


@dataclass(frozen=True, slots=True)
class DecideOptions:
    """The switches of stages B-D (from DnsSettings)."""

    nxdomain_code: int = 550
    nxdomain_address_fallback: bool = False
    allow_mx_ip: bool = False
    routable_networks: tuple[IPNetwork, ...] = ()
    self_addresses: frozenset[IPAddress] = frozenset()
    ipv6: bool = True
    mx_limit: int = 10
    cname_limit: int = 8


@dataclass(frozen=True, slots=True)
class Lookup:
    """One name and type after CNAMEs were followed, possibly over several queries."""

    query: Query
    status: DnsStatus
    records: tuple[Record, ...] = ()
    cnames: tuple[Cname, ...] = ()
    negative_ttl: int | None = None
    problem: str | None = None

    @property
    def transient(self) -> bool:
        return self.problem is not None or self.status.transient

    @property
    def ttl(self) -> int | None:
        """How long this lookup's statement holds (positive or RFC 2308), None if unknown."""
        if self.status is DnsStatus.OK:
            return min([c.ttl for c in self.cnames] + [r.ttl for r in self.records])
        if self.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA) and self.negative_ttl is not None:
            return min([c.ttl for c in self.cnames] + [self.negative_ttl])
        return None


class HostOutcome(enum.Enum):
    USABLE = "usable"
    SELF = "self"
    UNKNOWN = "unknown"
    UNUSABLE = "unusable"


@dataclass(frozen=True, slots=True)
class Host:
    """How one mail host (an MX exchange, or the domain as implicit MX) turned out."""

    outcome: HostOutcome
    stage: str
    ttl: int | None
    addresses: tuple[IPAddress, ...] = field(default=())


def decide(domain: str, options: DecideOptions) -> Flow:
    """Stages B-D for `domain` (lowercase A-label without the root dot)."""
    evidence: list[str] = []
    name = domain + "."
    mx = yield from lookup(Query(name, RdType.MX), options, evidence)
    if mx.transient:
        return v.temporary_failure(domain, "B7", tuple(evidence))
    if mx.status is DnsStatus.NXDOMAIN:
        return (yield from _nxdomain(domain, mx, options, evidence))
    if mx.status is DnsStatus.NODATA:
        evidence.append("no MX records: the domain is its own implicit MX (B5)")
        return (yield from _implicit_mx(domain, mx, options, evidence))
    nulls = [r for r in mx.records if r.data == "."]
    real = sorted((r for r in mx.records if r.data != "."), key=lambda r: (r.preference, r.data))
    if not real:
        stage = "B2" if len(mx.records) == 1 and mx.records[0].preference == 0 else "B3"
        return v.null_mx(domain, stage, tuple(evidence), mx.ttl)
    if nulls:
        log.warning(
            "domain %s mixes a null MX with real MX records; the null entry is ignored", domain
        )
        evidence.append("null MX entry ignored: it is mixed with real MX records (B4)")
    return (yield from _exchanges(domain, mx, real, options, evidence))


def _nxdomain(domain: str, mx: Lookup, options: DecideOptions, evidence: list[str]) -> Flow:
    if options.nxdomain_address_fallback:
        host = yield from _host(mx.query.name, options, evidence)
        if host.outcome is HostOutcome.USABLE:
            evidence.append("NXDOMAIN for MX tolerated: the domain has a routable address (B6)")
            return v.accepted("B6", tuple(evidence), host.ttl)
    return v.domain_not_found(options.nxdomain_code, tuple(evidence), mx.ttl)


def _exchanges(
    domain: str, mx: Lookup, exchanges: list[Record], options: DecideOptions, evidence: list[str]
) -> Flow:
    """Stage C: the first usable exchange decides; otherwise unknown beats definitely unusable."""
    ttls: list[int | None] = [mx.ttl]
    first_stage = ""
    unknown = capped = loop = False
    for index, record in enumerate(exchanges):
        if index >= options.mx_limit:
            capped = True
            evidence.append(
                f"MX limit of {options.mx_limit} reached; {len(exchanges) - index} not examined"
            )
            break
        host = yield from _exchange(record, options, evidence)
        if host.outcome is HostOutcome.USABLE:
            return v.accepted(host.stage, tuple(evidence), _min_ttl([mx.ttl, host.ttl]))
        first_stage = first_stage or host.stage
        ttls.append(host.ttl)
        if host.outcome is HostOutcome.SELF:
            loop = True
            evidence.append(f"{record.data} is this relay: it and less preferred MX are discarded")
            break
        unknown = unknown or host.outcome is HostOutcome.UNKNOWN
    if unknown or capped:
        return v.temporary_failure(domain, "C6", tuple(evidence))
    if loop:
        return v.loops_back(domain, "C5", tuple(evidence), _min_ttl(ttls))
    return v.no_usable_mx(domain, first_stage, tuple(evidence), _min_ttl(ttls))


def _exchange(
    record: Record, options: DecideOptions, evidence: list[str]
) -> Generator[Query, Answer, Host]:
    address = parse_ip(record.data)
    if address is None:
        return (yield from _host(record.data, options, evidence))
    routable = is_globally_routable(address, options.routable_networks)
    if options.allow_mx_ip and routable:
        evidence.append(f"MX exchange {record.data} is an IP address; allowed and routable (C4)")
        return Host(HostOutcome.USABLE, "C4", record.ttl, (address,))
    why = "not routable" if not routable else "not allowed (MXRELAY_ALLOW_MX_IP is off)"
    evidence.append(f"MX exchange {record.data} is an IP address, not a host name: {why} (C4)")
    return Host(HostOutcome.UNUSABLE, "C4", record.ttl, (address,))


def _implicit_mx(domain: str, mx: Lookup, options: DecideOptions, evidence: list[str]) -> Flow:
    """Stage D: the domain's own A/AAAA records."""
    host = yield from _host(mx.query.name, options, evidence)
    if host.outcome is HostOutcome.USABLE:
        positive = _min_ttl([host.ttl] + ([mx.ttl] if mx.ttl is not None else []))
        return v.accepted("D1", tuple(evidence), positive)
    if host.outcome is HostOutcome.UNKNOWN:
        return v.temporary_failure(domain, "D4", tuple(evidence))
    ttl = _min_ttl([mx.ttl, host.ttl])
    if host.outcome is HostOutcome.SELF:
        return v.loops_back(domain, "C5", tuple(evidence), ttl)
    if host.addresses:
        return v.no_routable_address(tuple(evidence), ttl)
    return v.no_records(tuple(evidence), ttl)


def _host(name: str, options: DecideOptions, evidence: list[str]) -> Generator[Query, Answer, Host]:
    """A and AAAA of one mail host, classified (C1-C3, C5-C7; D1-D4)."""
    absolute = name if name.endswith(".") else name + "."
    lookups = [(yield from lookup(Query(absolute, RdType.A), options, evidence))]
    first = _classify(lookups, options)
    need_aaaa = options.ipv6 and lookups[0].status is not DnsStatus.NXDOMAIN
    if first.outcome in (HostOutcome.USABLE, HostOutcome.SELF) or not need_aaaa:
        return first
    lookups.append((yield from lookup(Query(absolute, RdType.AAAA), options, evidence)))
    return _classify(lookups, options)


def _classify(lookups: list[Lookup], options: DecideOptions) -> Host:
    addresses = [
        (address, item)
        for item in lookups
        if item.status is DnsStatus.OK
        for record in item.records
        if (address := parse_ip(record.data)) is not None
    ]
    found = tuple(address for address, _ in addresses)
    for address, item in addresses:
        if address not in options.self_addresses and is_globally_routable(
            address, options.routable_networks
        ):
            return Host(HostOutcome.USABLE, "C7" if item.cnames else "C1", item.ttl, found)
    if any(item.transient for item in lookups):  # what was not learnt might have been usable
        return Host(HostOutcome.UNKNOWN, "C6", None, found)
    ttl = _min_ttl(item.ttl for item in lookups)
    if any(address in options.self_addresses for address in found):
        return Host(HostOutcome.SELF, "C5", ttl, found)
    return Host(HostOutcome.UNUSABLE, "C3" if found else "C2", ttl, found)


def lookup(
    query: Query, options: DecideOptions, evidence: list[str]
) -> Generator[Query, Answer, Lookup]:
    """Ask `query`, following CNAMEs the server left unresolved, within `cname_limit` hops."""
    cnames: list[Cname] = []
    current = query
    while True:
        answer = yield current
        evidence.extend(describe(answer))
        cnames.extend(answer.cnames)
        problem = _chain_problem(query.name, cnames, options.cname_limit)
        if problem is not None:
            evidence.append(f"{query}: {problem}")
            return Lookup(query, answer.status, (), tuple(cnames), None, problem)
        unresolved = (
            answer.status is DnsStatus.NODATA and answer.cnames and answer.negative_ttl is None
        )
        if not unresolved:
            return Lookup(query, answer.status, answer.records, tuple(cnames), answer.negative_ttl)
        current = Query(answer.final_name, query.rdtype)


def _chain_problem(start: str, cnames: list[Cname], limit: int) -> str | None:
    seen = {start.lower()}
    for cname in cnames:
        target = cname.target.lower()
        if target in seen:
            return "CNAME loop"
        seen.add(target)
    if len(cnames) > limit:
        return f"CNAME chain longer than {limit}"
    return None


def describe(answer: Answer) -> list[str]:
    """Evidence lines for one answer: outcome, where it came from, and each record with its TTL."""
    head = f"{answer.query}: {answer.status}"
    if answer.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA):
        head += (
            f", negative TTL {answer.negative_ttl}"
            if answer.negative_ttl is not None
            else ", no SOA (not cacheable)"
        )
    if answer.source:
        head += f" ({answer.source})"
    return [head] + [f"  {item}" for item in (*answer.cnames, *answer.records)]


def _min_ttl(ttls: Iterable[int | None]) -> int | None:
    """Minimum of the TTLs, or None (not cacheable) when any is unknown."""
    values = list(ttls)
    if not values or any(ttl is None for ttl in values):
        return None
    return min(ttl for ttl in values if ttl is not None)
