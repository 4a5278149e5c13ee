"""Zone data, injected faults and the query log of the test DNS server, and how it answers.

`Zones` answers like a recursive resolver that knows only its own zones (by default `example.net.`
and `example.org.`): CNAME chains are followed inside the zones and returned in the answer; NXDOMAIN
and NODATA carry the zone's SOA in the authority section (TTL and MINIMUM configurable, so RFC 2308
lifetimes can be tested); names outside the zones get REFUSED. Faults are injected per name (and
optionally per type), optionally only for the next N queries. Every query is recorded (name, type,
transport). Packets are dnslib's; the sockets are in `dns_server.py`. Thread-safe: tests change
zones on their thread while the server answers on its own.
"""

from __future__ import annotations

import enum
import ipaddress
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, RR, SOA, DNSRecord

_CHASE_LIMIT = 40


class Fault(enum.Enum):
    SERVFAIL = "servfail"
    REFUSED = "refused"
    FORMERR = "formerr"
    NOTIMP = "notimp"
    NXDOMAIN = "nxdomain"  # with the zone's SOA
    NXDOMAIN_NO_SOA = "nxdomain-no-soa"
    NODATA = "nodata"  # with the zone's SOA
    NODATA_NO_SOA = "nodata-no-soa"
    DROP = "drop"  # no answer at all
    LATE = "late"  # the normal answer, `delay` seconds later
    TRUNCATE = "truncate"  # TC=1 over UDP, the full answer over TCP
    TRUNCATE_TCP_FAIL = "truncate-tcp-fail"  # TC=1 over UDP, TCP closes without answering
    GARBAGE = "garbage"  # bytes that are not a DNS message
    NO_CHASE = "no-chase"  # a CNAME answered without following it (authoritative style)


_RCODES = {
    Fault.SERVFAIL: RCODE.SERVFAIL,
    Fault.REFUSED: RCODE.REFUSED,
    Fault.FORMERR: RCODE.FORMERR,
    Fault.NOTIMP: RCODE.NOTIMP,
}


@dataclass(frozen=True, slots=True)
class ReceivedQuery:
    name: str  # lowercase, absolute
    rdtype: str
    transport: str  # "udp" or "tcp"


@dataclass(slots=True)
class _Rule:
    fault: Fault
    delay: float
    times: int | None


class CloseConnection:
    """Reply sentinel: close the TCP connection without answering."""


CLOSE = CloseConnection()
Response = bytes | None | CloseConnection


def _absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


class Zones:
    """Zones, faults and a query log; `respond()` turns a query packet into the reply packet."""

    def __init__(
        self,
        zones: Iterable[str] = ("example.net", "example.org"),
        *,
        soa_ttl: int = 300,
        soa_minimum: int = 60,
    ) -> None:
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._records: dict[str, list[RR]] = {}
        self._soa: dict[str, tuple[int, int]] = {}
        self._faults: dict[tuple[str, str | None], _Rule] = {}
        self._queries: list[ReceivedQuery] = []
        for zone in zones:
            self.zone(zone, soa_ttl=soa_ttl, soa_minimum=soa_minimum)

    # --- zone data ---------------------------------------------------------------------------

    def zone(self, apex: str, *, soa_ttl: int = 300, soa_minimum: int = 60) -> None:
        """Serve (or re-configure) a zone; its SOA TTL and MINIMUM drive negative caching."""
        with self._lock:
            self._soa[_absolute(apex)] = (soa_ttl, soa_minimum)

    def add(self, name: str, rdtype: str, value: str, ttl: int = 300) -> None:
        """One record, written as in a zone file (`10 mx.example.net.`, `192.0.2.1`, ...)."""
        self.load(f"{_absolute(name)} {ttl} IN {rdtype.upper()} {value}")

    def load(self, text: str) -> None:
        """BIND-style records; an SOA record makes its owner a zone apex."""
        for rr in RR.fromZone(text):
            owner = str(rr.rname).lower()
            if rr.rtype == QTYPE.SOA:
                with self._lock:
                    self._soa[owner] = (rr.ttl, int(rr.rdata.times[-1]))
                continue
            with self._lock:
                self._records.setdefault(owner, []).append(rr)

    def mx(self, domain: str, *exchanges: str, ttl: int = 300) -> None:
        """MX records: `mx(domain, "10 mx.example.net", "0 .")`."""
        for exchange in exchanges:
            preference, _, host = exchange.partition(" ")
            target = host if host == "." else _absolute(host)
            self.add(domain, "MX", f"{preference} {target}", ttl)

    def a(self, name: str, *addresses: str, ttl: int = 300) -> None:
        for text in addresses:
            address = ipaddress.ip_address(text)
            rdtype = "AAAA" if address.version == 6 else "A"
            self.add(name, rdtype, address.exploded, ttl)  # dnslib reads no embedded IPv4

    def cname(self, name: str, target: str, ttl: int = 300) -> None:
        self.add(name, "CNAME", _absolute(target), ttl)

    def txt(self, name: str, text: str, ttl: int = 300) -> None:
        self.add(name, "TXT", f'"{text}"', ttl)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        owner = _absolute(name)
        with self._lock:
            kept = [
                rr
                for rr in self._records.get(owner, [])
                if rdtype is not None and QTYPE[rr.rtype] != rdtype.upper()
            ]
            self._records[owner] = kept

    # --- faults ------------------------------------------------------------------------------

    def fault(
        self,
        name: str,
        fault: Fault,
        rdtype: str | None = None,
        *,
        delay: float = 0.0,
        times: int | None = None,
    ) -> None:
        """Answer queries for `name` (of `rdtype`, or any type) with `fault`, `times` times."""
        with self._lock:
            self._faults[(_absolute(name), rdtype.upper() if rdtype else None)] = _Rule(
                fault, delay, times
            )

    def late(self, name: str, delay: float, rdtype: str | None = None) -> None:
        self.fault(name, Fault.LATE, rdtype, delay=delay)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --- the query log -----------------------------------------------------------------------

    @property
    def queries(self) -> list[ReceivedQuery]:
        with self._lock:
            return list(self._queries)

    def queries_for(self, name: str, rdtype: str | None = None) -> list[ReceivedQuery]:
        owner = _absolute(name)
        return [
            q
            for q in self.queries
            if q.name == owner and (rdtype is None or q.rdtype == rdtype.upper())
        ]

    def wait_for_query(self, name: str, rdtype: str | None = None, timeout: float = 5.0) -> bool:
        """Block until a query for `name` (and `rdtype`) has arrived; False on timeout."""
        owner, wanted = _absolute(name), rdtype.upper() if rdtype else None
        with self._received:
            return self._received.wait_for(
                lambda: any(q.name == owner and wanted in (None, q.rdtype) for q in self._queries),
                timeout,
            )

    def reset_queries(self) -> None:
        with self._lock:
            self._queries.clear()

    # --- answering (called from the serving thread) ------------------------------------------

    def respond(self, data: bytes, transport: str) -> tuple[Response, float]:
        """The reply to one packet, and how long to wait before sending it."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises several types for malformed input
            return None, 0.0
        name = str(request.q.qname).lower()
        rdtype = QTYPE.get(request.q.qtype)
        with self._lock:
            self._queries.append(ReceivedQuery(name, str(rdtype), transport))
            self._received.notify_all()
            rule = self._take_rule(name, str(rdtype))
        reply = request.reply(ra=1)
        if rule is None:
            return self._resolve(request, reply, chase=True), 0.0
        fault = rule.fault
        if fault is Fault.DROP:
            return None, 0.0
        if fault is Fault.GARBAGE:
            return b"\x12\x34 this is not a DNS message", 0.0
        if fault in _RCODES:
            reply.header.rcode = _RCODES[fault]
            return bytes(reply.pack()), 0.0
        if fault in (Fault.NXDOMAIN, Fault.NXDOMAIN_NO_SOA, Fault.NODATA, Fault.NODATA_NO_SOA):
            if fault in (Fault.NXDOMAIN, Fault.NXDOMAIN_NO_SOA):
                reply.header.rcode = RCODE.NXDOMAIN
            if fault in (Fault.NXDOMAIN, Fault.NODATA):
                self._add_soa(reply, name)
            return bytes(reply.pack()), 0.0
        if fault in (Fault.TRUNCATE, Fault.TRUNCATE_TCP_FAIL) and transport == "udp":
            reply.header.tc = 1
            return bytes(reply.pack()), 0.0
        if fault is Fault.TRUNCATE_TCP_FAIL:
            return CLOSE, 0.0
        return self._resolve(request, reply, chase=fault is not Fault.NO_CHASE), rule.delay

    def _take_rule(self, name: str, rdtype: str) -> _Rule | None:
        for key in ((name, rdtype), (name, None)):
            rule = self._faults.get(key)
            if rule is None:
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self._faults[key]
            return rule
        return None

    def _zone_of(self, name: str) -> str | None:
        candidates = [z for z in self._soa if name == z or name.endswith("." + z)]
        return max(candidates, key=len) if candidates else None

    def _exists(self, name: str) -> bool:
        if self._records.get(name) or name in self._soa:
            return True
        return any(owner.endswith("." + name) and rrs for owner, rrs in self._records.items())

    def _add_soa(self, reply: DNSRecord, name: str) -> None:
        with self._lock:
            zone = self._zone_of(name)
            if zone is None:
                return
            ttl, minimum = self._soa[zone]
        rdata = SOA(f"ns.{zone}", f"hostmaster.{zone}", (1, 3600, 600, 86400, minimum))
        reply.add_auth(RR(zone, QTYPE.SOA, rdata=rdata, ttl=ttl))

    def _resolve(self, request: DNSRecord, reply: DNSRecord, *, chase: bool) -> bytes:
        qtype = request.q.qtype
        current = str(request.q.qname).lower()
        seen = {current}
        with self._lock:
            if self._zone_of(current) is None:
                reply.header.rcode = RCODE.REFUSED
                return bytes(reply.pack())
            for _ in range(_CHASE_LIMIT):
                cnames = [rr for rr in self._records.get(current, []) if rr.rtype == QTYPE.CNAME]
                if not cnames or qtype == QTYPE.CNAME:
                    break
                reply.add_answer(cnames[0])
                target = str(cnames[0].rdata.label).lower()
                if not chase or target in seen or self._zone_of(target) is None:
                    return bytes(reply.pack())  # left for the client to follow (or a loop)
                seen.add(target)
                current = target
            found = [rr for rr in self._records.get(current, []) if rr.rtype == qtype]
            exists = self._exists(current)
        for rr in found:
            reply.add_answer(rr)
        if not found:
            if not exists:
                reply.header.rcode = RCODE.NXDOMAIN
            self._add_soa(reply, current)
        return bytes(reply.pack())
