"""Stage A: read a RCPT forward-path and decide everything that needs no DNS.

Input is the path exactly as the client wrote it after `RCPT TO:` (ESMTP parameters removed):
`<user@example.net>`, `<Postmaster>`, `<@relay.example,@b.example:user@example.net>`,
`<"john doe"@example.net>`, `<user@[192.0.2.1]>`. The result is either a stage-A `Verdict`
(rows A1-A11 of recipient-validation.md) or the A-label domain that stages B-D must look up.

Choices pinned here: a trailing dot or an underscore in the domain is a syntax error (501 5.1.3,
RFC 5321 4.1.2, stricter than Postfix); a long local part is accepted (only the destination judges
it); a bare address without angle brackets is read like Postfix's default does; internationalised
domains are converted with IDNA 2008 / UTS-46 non-transitional processing (the `idna` package,
never Python's IDNA 2003 codec, which turns `faß.de` into `fass.de`), while ASCII `xn--` labels
are left to DNS. Pure: no I/O, no clock; policies (A12) live in `policy.py`.
"""

from __future__ import annotations

import ipaddress
import logging
import string
from dataclasses import dataclass

import idna

from mxrelay.model import to_alabel, utf8_address_text
from mxrelay.rcpt import verdict as v
from mxrelay.rcpt.routable import IPNetwork, is_globally_routable
from mxrelay.rcpt.verdict import Verdict

log = logging.getLogger(__name__)

PATH_LIMIT = 256  # RFC 5321 4.5.3.1.3, punctuation included
LOCAL_PART_LIMIT = 64  # RFC 5321 4.5.3.1.1; exceeding it is only logged (A3)
DOMAIN_LIMIT = 253  # 255 octets on the wire, without the root label
LABEL_LIMIT = 63
SPECIAL_USE_TLDS = frozenset({"invalid", "localhost", "local", "onion", "test"})  # RFC 6761, 7686

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset(string.ascii_lowercase + string.digits + "-")


@dataclass(frozen=True, slots=True)
class AddressRules:
    """The stage-A switches (from DnsSettings)."""

    allow_test_tld: bool = False
    allow_address_literals: bool = False
    routable_networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class Parsed:
    """Stage A's result. `verdict` is set when stage A decided; else `domain` needs DNS."""

    shown: str
    mailbox: str = ""
    domain: str | None = None
    verdict: Verdict | None = None


class _SyntaxError(ValueError):
    """Raised inside the parser with a short reason; turned into 501 5.1.3 at the top."""


def analyse(path: str, smtputf8: bool, rules: AddressRules = AddressRules()) -> Parsed:
    """Stage A for one forward-path. Never raises."""
    text = path.strip(" \t")
    if text.startswith("<") or text.endswith(">"):
        if len(text) < 2 or not (text.startswith("<") and text.endswith(">")):
            return Parsed(text, verdict=v.bad_syntax("A1", "unbalanced angle brackets"))
        inner = text[1:-1]
    else:
        inner = text
    if not inner:
        return Parsed(inner, verdict=v.bad_syntax("A1", "empty path"))
    if not inner.isascii() and not smtputf8:
        return Parsed(inner, verdict=v.smtputf8_required())
    if len(f"<{inner}>".encode()) > PATH_LIMIT:
        return Parsed(inner, verdict=v.bad_syntax("A2", "path too long"))
    try:
        mailbox_text = _strip_source_route(inner)
    except _SyntaxError as exc:
        return Parsed(inner, verdict=v.bad_syntax("A1", str(exc)))
    if mailbox_text.lower() == "postmaster":
        return Parsed(mailbox_text, mailbox_text, None, v.accepted("A6"))
    try:
        local, domain_text = _split_mailbox(mailbox_text)
    except _SyntaxError as exc:
        return Parsed(mailbox_text, verdict=v.bad_syntax("A1", str(exc)))
    if len(local.encode()) > LOCAL_PART_LIMIT:
        log.info("accepting a local part longer than %d octets (A3)", LOCAL_PART_LIMIT)
    if domain_text.startswith("["):
        return _literal(mailbox_text, local, domain_text, rules)
    return _domain(mailbox_text, local, domain_text, rules)


def _strip_source_route(inner: str) -> str:
    """`@a,@b:user@x` → `user@x`. The route must be accepted and is ignored (RFC 5321 4.1.1.3)."""
    if not inner.startswith("@"):
        return inner
    position = 0
    while True:
        if position >= len(inner) or inner[position] != "@":
            raise _SyntaxError("bad source route")
        end = position + 1
        while end < len(inner) and inner[end] not in ",:":
            end += 1
        hop = inner[position + 1 : end]
        if not hop or (not hop.startswith("[") and domain_problem(hop.lower()) is not None):
            raise _SyntaxError("bad source route")
        if end >= len(inner):
            raise _SyntaxError("bad source route")
        position = end + 1
        if inner[end] == ":":
            return inner[position:]


def _split_mailbox(mailbox: str) -> tuple[str, str]:
    if mailbox.startswith('"'):
        end = _quoted_string_end(mailbox)
        local, rest = mailbox[: end + 1], mailbox[end + 1 :]
        if local == '""':
            raise _SyntaxError("empty local part")
    else:
        local, at, domain = mailbox.partition("@")
        if not at:
            raise _SyntaxError("no domain")
        _check_dot_string(local)
        rest = at + domain
    if not rest.startswith("@"):
        raise _SyntaxError("no domain")
    domain = rest[1:]
    if not domain:
        raise _SyntaxError("empty domain")
    return local, domain


def _quoted_string_end(text: str) -> int:
    """Index of the closing quote of the quoted string that opens `text` (RFC 5321 4.1.2)."""
    position = 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            if position + 1 >= len(text) or not _quoted_pair_ok(text[position + 1]):
                raise _SyntaxError("bad quoted pair")
            position += 2
        elif char == '"':
            return position
        elif (
            char == " "
            or char == "!"
            or ("#" <= char <= "~" and char != "\\")
            or utf8_address_text(char)
        ):
            position += 1
        else:
            raise _SyntaxError("bad character in quoted local part")
    raise _SyntaxError("unbalanced quotes")


def _quoted_pair_ok(char: str) -> bool:
    return " " <= char <= "~" or utf8_address_text(char)


def _check_dot_string(local: str) -> None:
    if not local:
        raise _SyntaxError("empty local part")
    for atom in local.split("."):
        if not atom:
            raise _SyntaxError("empty atom in local part")
        if any(c not in _ATEXT and not utf8_address_text(c) for c in atom):
            raise _SyntaxError("bad character in local part")


def _literal(shown: str, local: str, text: str, rules: AddressRules) -> Parsed:
    """Rows A7-A9: an address literal is treated as its own MX, without DNS."""
    if not text.endswith("]"):
        return Parsed(shown, verdict=v.bad_syntax("A9", "bad address literal"))
    content = text[1:-1]
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if content[:5].lower() == "ipv6:":
            if "%" in content:
                raise ValueError("scoped address")
            address = ipaddress.IPv6Address(content[5:])
        elif ":" in content:
            return Parsed(shown, verdict=v.bad_syntax("A9", "unregistered address literal tag"))
        else:
            address = ipaddress.IPv4Address(content)
    except ValueError:
        return Parsed(shown, verdict=v.bad_syntax("A9", "bad address literal"))
    mailbox = f"{local}@{text}"
    if not is_globally_routable(address, rules.routable_networks):
        return Parsed(shown, mailbox, verdict=v.literal_not_routable())
    if not rules.allow_address_literals:
        return Parsed(shown, mailbox, verdict=v.literal_refused())
    return Parsed(shown, mailbox, verdict=v.accepted("A8", (f"address literal {address}",)))


def _domain(shown: str, local: str, written: str, rules: AddressRules) -> Parsed:
    """Rows A1, A5, A10, A11 for a domain name; returns the A-label that stage B looks up."""
    if written.isascii():
        alabel = written.lower()
        normalised = alabel
    else:
        try:
            alabel = to_alabel(written)
            normalised = idna.decode(alabel)
        except (UnicodeError, ValueError):
            return Parsed(shown, verdict=v.bad_syntax("A5", "invalid internationalised domain"))
    problem = domain_problem(alabel)
    if problem is not None:
        return Parsed(shown, verdict=v.bad_syntax("A1", problem))
    mailbox = f"{local}@{normalised}"
    labels = alabel.split(".")
    if len(labels) == 1:
        return Parsed(shown, mailbox, alabel, v.not_fully_qualified())
    tld = labels[-1]
    if tld.isdigit() or (tld in SPECIAL_USE_TLDS and not (tld == "test" and rules.allow_test_tld)):
        return Parsed(shown, mailbox, alabel, v.special_use(alabel))
    return Parsed(shown, mailbox, alabel)


def domain_problem(domain: str) -> str | None:
    """Why a lowercase ASCII domain breaks RFC 5321's syntax, or None when it is fine."""
    if domain.endswith("."):
        return "trailing dot"
    if len(domain) > DOMAIN_LIMIT:
        return "domain too long"
    for label in domain.split("."):
        if not label:
            return "empty label"
        if len(label) > LABEL_LIMIT:
            return "label too long"
        if "_" in label:
            return "underscore in domain"
        if any(c not in _LDH for c in label):
            return "bad character in domain"
        if label.startswith("-") or label.endswith("-"):
            return "hyphen at the start or end of a label"
    return None
