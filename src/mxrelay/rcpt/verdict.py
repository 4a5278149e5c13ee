"""Domain-level verdicts, the catalogue of their reply texts, and how a verdict becomes a reply.

Every stage (address syntax, policy, DNS) ends in a `Verdict`: reply code, enhanced status detail,
reason class, the decision-table row that decided (`stage`), evidence lines, and how long the
verdict may be cached. A verdict is about a *domain*, so one cached verdict serves every address at
that domain; `render()` adds the address and produces the `RecipientVerdict` the SMTP layer uses.

Reply texts follow Postfix's style (`<addr>: Recipient address rejected: <reason>`), and every
X.1.2 text keeps the reference validator's words "Bad destination mailbox address", so anything
that matched on either wording still matches. The wording lives here and only here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from mxrelay.model import Reason, RecipientVerdict, Reply

REJECTED = "Recipient address rejected"
BAD_DESTINATION = "(Bad destination mailbox address)"
_DISPLAY_LIMIT = 256


class Lifetime(enum.StrEnum):
    """Which cache rule a verdict falls under (recipient-validation.md section 6)."""

    POSITIVE = "positive"  # min TTL of the chain, clamped to [MIN_TTL, MAX_TTL]; TTL 0 never reused
    NEGATIVE = "negative"  # RFC 2308 min(SOA TTL, SOA MINIMUM), capped; not cached without an SOA
    TRANSIENT = "transient"  # MXRELAY_DNS_TRANSIENT_TTL, always 4xx
    NONE = "none"  # decided without DNS, or not worth keeping


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one stage decided about a domain (or an address, for stage A)."""

    code: int
    status: str
    reason: Reason
    stage: str
    text: str
    evidence: tuple[str, ...] = ()
    lifetime: Lifetime = Lifetime.NONE
    ttl: int | None = None

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    def with_evidence(self, *lines: str) -> Verdict:
        return replace(self, evidence=self.evidence + lines)


def display(address: str, smtputf8: bool) -> str:
    """An address as it may appear in a reply: one line, bounded, ASCII unless SMTPUTF8 was given."""
    text = "".join(c if c.isprintable() else "?" for c in address)
    if not smtputf8:
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    if len(text) > _DISPLAY_LIMIT:
        text = text[: _DISPLAY_LIMIT - 3] + "..."
    return text


def render(
    verdict: Verdict,
    address: str,
    *,
    smtputf8: bool,
    mailbox: str = "",
    domain: str | None = None,
    cached: bool = False,
) -> RecipientVerdict:
    """The verdict as the SMTP layer sees it, with `<address>` in the reply text."""
    text = f"<{display(address, smtputf8)}>: {verdict.text}"
    return RecipientVerdict(
        reply=Reply(verdict.code, verdict.status, text),
        reason=verdict.reason,
        mailbox=mailbox,
        domain=domain,
        stage=verdict.stage,
        evidence=verdict.evidence,
        cached=cached,
    )


# --------------------------------------------------------------------------------------------
# The catalogue: one constructor per wording
# --------------------------------------------------------------------------------------------


def accepted(stage: str, evidence: tuple[str, ...] = (), ttl: int | None = None) -> Verdict:
    lifetime = Lifetime.POSITIVE if ttl is not None else Lifetime.NONE
    return Verdict(250, "1.5", Reason.OK, stage, "Recipient ok", evidence, lifetime, ttl)


def bad_syntax(stage: str, why: str) -> Verdict:
    return Verdict(501, "1.3", Reason.SYNTAX, stage, f"Bad recipient address syntax ({why})")


def smtputf8_required() -> Verdict:
    return Verdict(553, "6.7", Reason.SYNTAX, "A4", "Must declare SMTPUTF8 to send unicode address")


def _bad_destination(reason: Reason, stage: str, why: str, code: int = 550) -> Verdict:
    return Verdict(code, "1.2", reason, stage, f"{REJECTED}: {why} {BAD_DESTINATION}")


def not_fully_qualified() -> Verdict:
    return _bad_destination(Reason.SPECIAL_USE, "A10", "Domain name is not fully qualified")


def special_use(domain: str) -> Verdict:
    return _bad_destination(
        Reason.SPECIAL_USE, "A11", f"Domain {domain} is a special-use name and receives no mail"
    )


def literal_not_routable() -> Verdict:
    return _bad_destination(Reason.NO_USABLE_MX, "A7", "Address literal is not globally routable")


def literal_refused() -> Verdict:
    return Verdict(
        550, "7.1", Reason.POLICY, "A8", f"{REJECTED}: Address literals are not accepted"
    )


def domain_not_found(code: int, evidence: tuple[str, ...], ttl: int | None) -> Verdict:
    verdict = _bad_destination(Reason.NXDOMAIN, "B6", "Domain not found", code)
    return replace(verdict, evidence=evidence, lifetime=Lifetime.NEGATIVE, ttl=ttl)


def null_mx(domain: str, stage: str, evidence: tuple[str, ...], ttl: int | None) -> Verdict:
    text = f"{REJECTED}: Domain {domain} does not accept mail (nullMX)"
    return Verdict(556, "1.10", Reason.NULL_MX, stage, text, evidence, Lifetime.POSITIVE, ttl)


def no_usable_mx(domain: str, stage: str, evidence: tuple[str, ...], ttl: int | None) -> Verdict:
    verdict = _bad_destination(Reason.NO_USABLE_MX, stage, f"No usable MX host for {domain}")
    return replace(verdict, evidence=evidence, lifetime=Lifetime.NEGATIVE, ttl=ttl)


def no_records(evidence: tuple[str, ...], ttl: int | None) -> Verdict:
    verdict = _bad_destination(Reason.NODATA, "D2", "Domain has no MX or address records")
    return replace(verdict, evidence=evidence, lifetime=Lifetime.NEGATIVE, ttl=ttl)


def no_routable_address(evidence: tuple[str, ...], ttl: int | None) -> Verdict:
    verdict = _bad_destination(Reason.NO_USABLE_MX, "D3", "Domain has no routable address")
    return replace(verdict, evidence=evidence, lifetime=Lifetime.NEGATIVE, ttl=ttl)


def loops_back(domain: str, stage: str, evidence: tuple[str, ...], ttl: int | None) -> Verdict:
    text = f"{REJECTED}: Mail for {domain} loops back to myself"
    return Verdict(550, "4.6", Reason.LOOP, stage, text, evidence, Lifetime.NEGATIVE, ttl)


def temporary_failure(domain: str, stage: str, evidence: tuple[str, ...]) -> Verdict:
    text = f"{REJECTED}: Temporary DNS failure looking up {domain}; try again later"
    return Verdict(451, "4.3", Reason.TEMPFAIL, stage, text, evidence, Lifetime.TRANSIENT)


def policy_refusal(why: str, evidence: tuple[str, ...] = ()) -> Verdict:
    return Verdict(550, "7.1", Reason.POLICY, "A12", f"{REJECTED}: {why}", evidence)
