"""Row A12: optional domain policies, each refusing with 550 5.7.1 and kept apart from DNS validity.

All are off by default (recipient-validation.md section 7):
- a deny list and an allow list of domains (subdomains included);
- an explicit, versioned typo list (`typo-domain suggestion` per line), answered with "did you
  mean ...?"; never fuzzy matching, because real domains sit within an edit of big providers;
- the disposable-domain list of the `disposable-email-domains` package, matched on the registrable
  domain (Public Suffix List from `publicsuffixlist`), so `a.b.mailinator.com` matches
  `mailinator.com`; the package's allowlist and MXRELAY_POLICY_DISPOSABLE_ALLOW win over it.

Checked in that order: deny, allow, typo, disposable. `DomainPolicy.check` is pure; reading the
typo file and loading the lists happen once, in `from_settings`. Every domain is compared in the
A-label form of `mxrelay.config.domain_alabel`, which the settings' domain lists (these and
MXRELAY_DNS_TRUSTED_DOMAINS) are converted to when they are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import idna

from mxrelay.config import ConfigError, PolicySettings
from mxrelay.model import domain_alabel
from mxrelay.rcpt import verdict as v
from mxrelay.rcpt.verdict import Verdict


class Suffixes:
    """The registrable-domain function of the Public Suffix List (loaded only when needed)."""

    def __init__(self) -> None:
        from publicsuffixlist import PublicSuffixList

        self._list = PublicSuffixList()

    def registrable(self, domain: str) -> str | None:
        result = self._list.privatesuffix(domain)
        return str(result) if result else None


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    deny: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    typos: Mapping[str, str] = field(default_factory=dict)
    disposable: frozenset[str] = frozenset()
    disposable_allow: frozenset[str] = frozenset()
    suffixes: Suffixes | None = None

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> DomainPolicy:
        typos = load_typo_file(settings.typo_file) if settings.typo_file is not None else {}
        disposable: frozenset[str] = frozenset()
        allow: frozenset[str] = frozenset()
        suffixes = None
        if settings.disposable:
            from disposable_email_domains import allowlist, blocklist

            disposable = frozenset(blocklist)
            allow = frozenset(allowlist) | frozenset(settings.disposable_allow)
            suffixes = Suffixes()
        return cls(
            deny=settings.domain_deny,
            allow=settings.domain_allow,
            typos=typos,
            disposable=disposable,
            disposable_allow=allow,
            suffixes=suffixes,
        )

    def check(self, domain: str) -> Verdict | None:
        """A 550 5.7.1 verdict when a policy refuses `domain` (lowercase A-label), else None."""
        denied = listed(domain, self.deny)
        if denied is not None:
            return v.policy_refusal("Domain not accepted", (f"domain deny list: {denied}",))
        if self.allow and listed(domain, self.allow) is None:
            return v.policy_refusal("Domain not accepted", ("domain not on the allow list",))
        suggestion = self.typos.get(domain)
        if suggestion is not None:
            return v.policy_refusal(
                f"Domain {domain} looks like a typo; did you mean {suggestion}?",
                (f"typo list: {domain} → {suggestion}",),
            )
        return self._disposable(domain)

    def _disposable(self, domain: str) -> Verdict | None:
        if not self.disposable or self.suffixes is None:
            return None
        registrable = self.suffixes.registrable(domain) or domain
        candidates = _parents(domain, registrable)
        if any(name in self.disposable_allow for name in candidates):
            return None
        for name in candidates:
            if name in self.disposable:
                return v.policy_refusal(
                    "Disposable address not accepted",
                    (f"disposable-domain list: {name} (registrable domain {registrable})",),
                )
        return None


def _parents(domain: str, registrable: str) -> list[str]:
    """`domain` and its parents down to (and including) `registrable`."""
    names = [domain]
    while names[-1] != registrable and "." in names[-1]:
        names.append(names[-1].split(".", 1)[1])
    return names


def listed(domain: str, entries: Iterable[str]) -> str | None:
    """The entry that `domain` is, or is a subdomain of; None when it is neither."""
    for entry in entries:
        if domain == entry or domain.endswith("." + entry):
            return entry
    return None


def load_typo_file(path: Path) -> dict[str, str]:
    """`typo-domain suggestion` per line; blank lines and `#` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"MXRELAY_POLICY_TYPO_FILE: {str(path)!r} cannot be read ({exc.strerror}); "
            "expected a readable file"
        ) from None
    typos: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise ConfigError(
                f"MXRELAY_POLICY_TYPO_FILE: line {number} has {len(words)} words; "
                "expected 'typo-domain suggestion'"
            )
        try:
            typos[domain_alabel(words[0])] = words[1].lower()
        except idna.IDNAError:
            raise ConfigError(
                f"MXRELAY_POLICY_TYPO_FILE: line {number} has {words[0]!r}, which is not a "
                "domain; expected 'typo-domain suggestion'"
            ) from None
    return typos
