"""The values exchanged between the decision logic and the resolver: `Query` out, `Answer` back.

`decide.py` yields a `Query` and receives an `Answer`; `resolver.py` turns a `Query` into DNS
traffic and the response (or its absence) into an `Answer`. Keeping these plain and frozen is what
lets the decision table be driven by hand-made answers in tests, and lets the resolver be swapped
without touching a decision.

An `Answer` carries what a decision needs and nothing of the wire format: the outcome class
(`DnsStatus`, in model.py with `RdType`: both are metric labels too), the records of the asked
type at the end of the CNAME chain, the chain itself, the TTLs needed for caching (positive: the
minimum over the chain and the RRset; negative: RFC 2308's min(SOA TTL, SOA MINIMUM), None when
the response carried no SOA), and a one-line description of where it came from for the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from mxrelay.model import DnsStatus, RdType


@dataclass(frozen=True, slots=True)
class Query:
    """One question: an absolute name (ending in the root dot, so no search list applies)."""

    name: str
    rdtype: RdType

    def __post_init__(self) -> None:
        if not self.name.endswith("."):
            raise ValueError(f"query names are absolute: {self.name!r}")

    def __str__(self) -> str:
        return f"{self.rdtype} {self.name}"


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record of the asked type. For MX, `data` is the exchange (`.` for null MX)."""

    name: str
    rdtype: RdType
    ttl: int
    data: str
    preference: int = 0

    def __str__(self) -> str:
        value = f"{self.preference} {self.data}" if self.rdtype is RdType.MX else self.data
        return f"{self.name} {self.ttl} {self.rdtype} {value}"


@dataclass(frozen=True, slots=True)
class Cname:
    owner: str
    target: str
    ttl: int

    def __str__(self) -> str:
        return f"{self.owner} {self.ttl} CNAME {self.target}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the resolver learnt for one `Query`."""

    query: Query
    status: DnsStatus
    records: tuple[Record, ...] = ()
    cnames: tuple[Cname, ...] = ()
    negative_ttl: int | None = None
    source: str = ""

    @property
    def final_name(self) -> str:
        """The name the chain ends at (the query name when there is no CNAME)."""
        return self.cnames[-1].target if self.cnames else self.query.name

    @property
    def ttl(self) -> int | None:
        """Minimum TTL over the CNAME chain and the records, or None when there is nothing."""
        ttls = [c.ttl for c in self.cnames] + [r.ttl for r in self.records]
        return min(ttls) if ttls else None
