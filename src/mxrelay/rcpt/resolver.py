"""DNS I/O: turn a `Query` into packets to the configured name servers and the reply into an `Answer`.

dnspython does the wire work (`dns.message` to build and parse, `dns.asyncquery.udp`/`tcp` to
send). Its stub resolver (`dns.asyncresolver`) is not used because it hides what the decision
table needs: the raw RCODE (REFUSED and SERVFAIL are both temporary here, while it folds them into
"no nameservers"), the SOA of a negative answer (RFC 2308 lifetimes), the CNAME chain as returned,
and one metric per query. What this module adds is the schedule, in the style of a stub resolver:

- names are always absolute (`Query` enforces the root dot), so no search list can ever apply;
- each query has one time budget; servers are tried in order, each getting an equal share of
  what is left, and a silent server is re-asked after 1 s, 2 s, 4 s... within its share;
- a reply with TC=1 is asked again over TCP; a TCP failure then is a temporary error;
- SERVFAIL, REFUSED, timeouts and errors move on to the next server; the last outcome counts.

Every reply (any RCODE) refreshes `last_answer_at` for the `dns` condition and the last-success gauge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.resolver

from mxrelay.config import HostPort
from mxrelay.metrics import Metrics
from mxrelay.model import DnsStatus, RdType
from mxrelay.rcpt.answer import Answer, Cname, Query, Record

RETRANSMIT_INTERVAL = 1.0  # seconds before a silent server is asked again (then doubled)
EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: avoids fragmentation, TC+TCP beyond it
_CHAIN_BOUND = 64  # CNAMEs read from one reply at most (decide.py enforces the real limit)


def system_nameservers() -> tuple[HostPort, ...]:
    """The system resolver's name servers (resolv.conf); its search list is ignored."""
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return ()
    return tuple(HostPort(str(server), system.port) for server in system.nameservers)


class Resolver:
    """Asks `servers` one question at a time; safe to share between concurrent RCPT checks."""

    def __init__(
        self,
        servers: Sequence[HostPort],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        retransmit_interval: float = RETRANSMIT_INTERVAL,
    ) -> None:
        self.servers = tuple(servers)
        self._retransmit_interval = retransmit_interval
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self.last_answer_at: float | None = None

    async def query(self, query: Query, budget: float) -> Answer:
        """One question within `budget` seconds; never raises for DNS or network trouble."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + budget
        message = dns.message.make_query(
            query.name, query.rdtype.value, use_edns=0, payload=EDNS_PAYLOAD
        )
        answer = Answer(query, DnsStatus.ERROR, source="no name servers configured")
        for index, server in enumerate(self.servers):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            share = remaining / (len(self.servers) - index)
            answer = await self._ask(query, message, server, share)
            if not answer.status.transient:
                break
        self._metrics.dns_lookups.labels(rdtype=query.rdtype, result=answer.status).inc()
        self._metrics.dns_latency.labels(rdtype=query.rdtype).observe(loop.time() - started)
        return answer

    async def _ask(
        self, query: Query, message: dns.message.Message, server: HostPort, budget: float
    ) -> Answer:
        loop = asyncio.get_running_loop()
        end = loop.time() + budget
        interval = self._retransmit_interval
        while (remaining := end - loop.time()) > 0:
            try:
                response = await dns.asyncquery.udp(
                    message,
                    server.host,
                    timeout=min(interval, remaining),
                    port=server.port,
                    ignore_unexpected=True,
                )
            except dns.exception.Timeout:
                interval *= 2
                continue
            except (OSError, EOFError, dns.exception.DNSException) as exc:
                return Answer(query, DnsStatus.ERROR, source=f"udp {server}: {_problem(exc)}")
            self._answered()
            if not response.flags & dns.flags.TC:
                return parse_response(query, response, f"udp {server}")
            return await self._over_tcp(query, message, server, end - loop.time())
        return Answer(
            query, DnsStatus.TIMEOUT, source=f"udp {server}: no reply within {budget:.3g}s"
        )

    async def _over_tcp(
        self, query: Query, message: dns.message.Message, server: HostPort, remaining: float
    ) -> Answer:
        if remaining <= 0:
            return Answer(
                query, DnsStatus.TIMEOUT, source=f"udp {server}: truncated, no time for TCP"
            )
        try:
            response = await dns.asyncquery.tcp(
                message, server.host, timeout=remaining, port=server.port
            )
        except dns.exception.Timeout:
            return Answer(
                query, DnsStatus.TIMEOUT, source=f"tcp {server}: truncated over UDP, TCP timed out"
            )
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            source = f"tcp {server}: truncated over UDP, TCP failed ({_problem(exc)})"
            return Answer(query, DnsStatus.ERROR, source=source)
        self._answered()
        return parse_response(query, response, f"tcp {server}")

    def _answered(self) -> None:
        self.last_answer_at = self._clock()
        self._metrics.dns_last_success.set(self._wall_clock())


def _problem(exc: BaseException) -> str:
    return type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"


def parse_response(query: Query, response: dns.message.Message, source: str) -> Answer:
    """The parts of a reply that the decision needs (pure; exposed for tests)."""
    rcode = response.rcode()
    if rcode == dns.rcode.SERVFAIL:
        return Answer(query, DnsStatus.SERVFAIL, source=f"SERVFAIL from {source}")
    if rcode == dns.rcode.REFUSED:
        return Answer(query, DnsStatus.REFUSED, source=f"REFUSED from {source}")
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return Answer(query, DnsStatus.ERROR, source=f"{dns.rcode.to_text(rcode)} from {source}")
    rdtype = dns.rdatatype.from_text(query.rdtype.value)
    current = dns.name.from_text(query.name)
    cnames: list[Cname] = []
    seen = {current}
    while len(cnames) < _CHAIN_BOUND:
        cname = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        first = cname[0]
        if not isinstance(first, dns.rdtypes.ANY.CNAME.CNAME):
            break
        target = first.target
        cnames.append(Cname(_text(current), _text(target), cname.ttl))
        if target in seen:
            break
        seen.add(target)
        current = target
    negative_ttl = _negative_ttl(response)
    if rcode == dns.rcode.NXDOMAIN:
        return Answer(query, DnsStatus.NXDOMAIN, (), tuple(cnames), negative_ttl, source)
    rrset = response.get_rrset(response.answer, current, dns.rdataclass.IN, rdtype)
    if rrset is None or len(rrset) == 0:
        return Answer(query, DnsStatus.NODATA, (), tuple(cnames), negative_ttl, source)
    records = tuple(_record(query.rdtype, _text(current), rrset.ttl, rdata) for rdata in rrset)
    return Answer(query, DnsStatus.OK, records, tuple(cnames), None, source)


def _record(rdtype: RdType, owner: str, ttl: int, rdata: dns.rdata.Rdata) -> Record:
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        return Record(owner, rdtype, ttl, _text(rdata.exchange), rdata.preference)
    if isinstance(rdata, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
        return Record(owner, rdtype, ttl, str(rdata.address))
    return Record(owner, rdtype, ttl, rdata.to_text())


def _negative_ttl(response: dns.message.Message) -> int | None:
    """RFC 2308 section 5: min(SOA TTL, SOA MINIMUM) from the authority section; None without one."""
    for rrset in response.authority:
        for soa in rrset:
            if isinstance(soa, dns.rdtypes.ANY.SOA.SOA):
                return int(min(rrset.ttl, soa.minimum))
    return None


def _text(name: dns.name.Name) -> str:
    return name.to_text().lower()
