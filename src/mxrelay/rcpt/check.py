"""`RecipientChecker`: the RCPT check the SMTP layer calls, and `mxrelay check`'s explanation.

Order for one forward-path: stage A (`address.py`: syntax, SMTPUTF8, Postmaster, literals,
special-use names) → policies (`policy.py`, A12) → trusted domains (no DNS) → the verdict cache →
stages B-D (`decide.py`) driven against the resolver within the per-RCPT budget. Lookups of one
domain that overlap share one task (single-flight) and their verdict is cached once, by the task,
even if every waiting client has gone. Policies run before DNS, so a definite 5xx is never hidden
behind a temporary DNS failure: the order is the precedence rule (Postfix's
`defer_if_permit`; `tests/rcpt/test_policy.py` holds it).

The checker owns the resolver, the cache and the in-flight tasks; `aclose()` cancels what runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from mxrelay.config import DnsSettings, HostPort, PolicySettings
from mxrelay.metrics import CacheResult, Metrics
from mxrelay.model import RecipientVerdict
from mxrelay.rcpt import verdict as v
from mxrelay.rcpt.address import AddressRules, Parsed, analyse
from mxrelay.rcpt.answer import Answer, Query
from mxrelay.rcpt.cache import CachePolicy, SingleFlight, VerdictCache
from mxrelay.rcpt.decide import DecideOptions, Flow, decide, describe
from mxrelay.rcpt.policy import DomainPolicy, listed
from mxrelay.rcpt.resolver import Resolver, system_nameservers
from mxrelay.rcpt.verdict import Verdict

# The shared lookup enforces the per-RCPT budget itself and returns a 451 with its evidence; a
# waiter only gives up on its own if that verdict is somehow late, so it waits a moment longer.
_WAITER_GRACE = 0.05


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    capacity: int
    evictions: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Verdict
    stale: bool = False


class RecipientChecker:
    """Decides RCPT recipients; one per application (it holds the cache)."""

    def __init__(
        self,
        dns: DnsSettings,
        policy: PolicySettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        nameservers: Callable[[], Sequence[HostPort]] = system_nameservers,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._rules = AddressRules(
            allow_test_tld=dns.allow_test_tld,
            allow_address_literals=dns.allow_address_literals,
            routable_networks=dns.routable_networks,
        )
        self._options = DecideOptions(
            nxdomain_code=dns.nxdomain_code,
            nxdomain_address_fallback=dns.nxdomain_address_fallback,
            allow_mx_ip=dns.allow_mx_ip,
            routable_networks=dns.routable_networks,
            self_addresses=frozenset(dns.self_addresses),
            ipv6=dns.ipv6,
            mx_limit=dns.mx_limit,
            cname_limit=dns.cname_limit,
        )
        self._policy = DomainPolicy.from_settings(policy)
        self._trusted = tuple(d.removesuffix(".") for d in dns.trusted_domains)
        self._query_timeout = dns.query_timeout.total_seconds()
        self._rcpt_timeout = dns.rcpt_timeout.total_seconds()
        servers = dns.servers or tuple(nameservers())
        self.resolver = Resolver(servers, metrics, clock=clock, wall_clock=wall_clock)
        self._cache = VerdictCache(
            CachePolicy.from_settings(dns), clock, on_evict=metrics.dns_cache_evictions.inc
        )
        self._flights: SingleFlight[str, _Outcome] = SingleFlight()

    @property
    def last_answer_at(self) -> float | None:
        """Clock time (the injected monotonic clock) of the last DNS reply of any kind."""
        return self.resolver.last_answer_at

    @property
    def cache_stats(self) -> CacheStats:
        return CacheStats(
            entries=len(self._cache),
            capacity=self._cache.policy.max_entries,
            evictions=self._cache.evictions,
            in_flight=len(self._flights),
        )

    async def check(self, path: str, smtputf8: bool) -> RecipientVerdict:
        """The verdict for one RCPT forward-path (as written, angle brackets included)."""
        return await self._check(path, smtputf8, use_cache=True)

    async def explain(self, target: str, *, smtputf8: bool = True) -> RecipientVerdict:
        """What the relay would answer for an address or a bare domain, with full evidence.

        Bypasses the cache (nothing is read from it or written to it). A bare domain is checked
        as `postmaster@domain`, the mailbox every domain must have (RFC 5321 4.5.1).
        """
        text = target.strip()
        if not text.startswith("<") and "@" not in text and text.lower() != "postmaster":
            text = f"postmaster@{text}"
        return await self._check(text, smtputf8, use_cache=False)

    async def aclose(self) -> None:
        await self._flights.aclose()

    async def __aenter__(self) -> RecipientChecker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _check(self, path: str, smtputf8: bool, *, use_cache: bool) -> RecipientVerdict:
        parsed = analyse(path, smtputf8, self._rules)
        if parsed.verdict is not None:
            return self._render(parsed, parsed.verdict, smtputf8, "decided without DNS")
        domain = parsed.domain
        assert domain is not None  # analyse() returns a domain whenever it leaves DNS to do
        refusal = self._policy.check(domain)
        if refusal is not None:
            return self._render(parsed, refusal, smtputf8, "decided by policy, without DNS")
        if listed(domain, self._trusted) is not None:
            trusted = v.accepted("trusted", (f"{domain} is a trusted domain",))
            return self._render(parsed, trusted, smtputf8, "decided without DNS")
        if not use_cache:
            verdict = await self._lookup(domain)
            return self._render(parsed, verdict, smtputf8, "cache: bypassed")
        return await self._cached(parsed, domain, smtputf8)

    async def _cached(self, parsed: Parsed, domain: str, smtputf8: bool) -> RecipientVerdict:
        requests = self._metrics.dns_cache_requests
        entry = self._cache.get(domain)
        self._metrics.dns_cache_entries.set(len(self._cache))  # get() drops expired entries
        if entry is not None:
            requests.labels(result=CacheResult.STALE if entry.stale else CacheResult.HIT).inc()
            left = entry.expires_at - self._clock()
            note = f"cache: {'stale' if entry.stale else 'hit'}, {left:.0f}s left"
            return self._render(parsed, entry.verdict, smtputf8, note, cached=True)
        task, joined = self._flights.run(domain, lambda: self._refresh(domain))
        requests.labels(result=CacheResult.COALESCED if joined else CacheResult.MISS).inc()
        try:
            async with asyncio.timeout(self._rcpt_timeout + _WAITER_GRACE):
                outcome = await asyncio.shield(task)
        except TimeoutError:
            outcome = _Outcome(self._budget_exhausted(domain, ["waiting for a shared lookup"]))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise  # this RCPT itself is being cancelled
            # the lookup was cancelled by aclose() (shutdown): this RCPT is only deferred
            note = "the lookup was cancelled: the checker is closing"
            outcome = _Outcome(v.temporary_failure(domain, "B8", (note,)))
        if outcome.stale:
            requests.labels(result=CacheResult.STALE).inc()
            return self._render(parsed, outcome.verdict, smtputf8, "cache: stale", cached=True)
        note = "cache: coalesced with a lookup in flight" if joined else "cache: miss"
        return self._render(parsed, outcome.verdict, smtputf8, note)

    async def _refresh(self, domain: str) -> _Outcome:
        """Look `domain` up and cache the verdict; runs as the single in-flight task for it."""
        verdict = await self._lookup(domain)
        try:
            if verdict.transient:
                stale = self._cache.get_stale(domain)
                if stale is not None:
                    self._cache.keep_stale(domain, stale)
                    served = stale.verdict.with_evidence(
                        "served stale: the refresh failed temporarily", *verdict.evidence
                    )
                    return _Outcome(served, stale=True)
            self._cache.put(domain, verdict)
            return _Outcome(verdict)
        finally:
            self._metrics.dns_cache_entries.set(len(self._cache))

    async def _lookup(self, domain: str) -> Verdict:
        """Stages B-D against the resolver, within the per-RCPT budget."""
        flow = decide(domain, self._options)
        answers: list[Answer] = []
        try:
            async with asyncio.timeout(self._rcpt_timeout):
                step = _advance(flow, None)
                while isinstance(step, Query):
                    answer = await self.resolver.query(step, self._query_timeout)
                    answers.append(answer)
                    step = _advance(flow, answer)
                return step
        except TimeoutError:
            flow.close()
            seen = [line for answer in answers for line in describe(answer)]
            return self._budget_exhausted(domain, seen)

    def _budget_exhausted(self, domain: str, seen: list[str]) -> Verdict:
        note = f"per-RCPT DNS budget of {self._rcpt_timeout:g}s exhausted (B8)"
        return v.temporary_failure(domain, "B8", (*seen, note))

    def _render(
        self, parsed: Parsed, verdict: Verdict, smtputf8: bool, note: str, *, cached: bool = False
    ) -> RecipientVerdict:
        verdict = verdict.with_evidence(f"stage {verdict.stage}; {note}")
        return v.render(
            verdict,
            parsed.shown,
            smtputf8=smtputf8,
            mailbox=parsed.mailbox,
            domain=parsed.domain,
            cached=cached,
        )


def _advance(flow: Flow, answer: Answer | None) -> Query | Verdict:
    """One step of the decision generator: the next query, or the verdict it returned.

    StopIteration is caught here, in a plain function: raised inside a coroutine it would become
    a RuntimeError (PEP 479).
    """
    try:
        return next(flow) if answer is None else flow.send(answer)
    except StopIteration as stop:
        result: Verdict = stop.value
        return result


async def explain(
    target: str,
    dns: DnsSettings,
    policy: PolicySettings,
    metrics: Metrics | None = None,
    *,
    smtputf8: bool = True,
) -> RecipientVerdict:
    """One-shot `RecipientChecker.explain` for `mxrelay check` (a fresh checker, closed after)."""
    async with RecipientChecker(dns, policy, metrics or Metrics()) as checker:
        return await checker.explain(target, smtputf8=smtputf8)
