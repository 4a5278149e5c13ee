"""`MXRELAY_ICS_STRIP` parsing and recipient matching (case, IDN A-labels, angle brackets)."""

from __future__ import annotations

import idna
import pytest

from mxrelay.config import load_settings
from mxrelay.model import (
    IcsScope,
    Mailbox,
    ScopeKind,
    canonical_domain,
    domain_alabel,
    to_alabel,
)
from mxrelay.rcpt.address import analyse


def _scope(value: str) -> IcsScope:
    settings = load_settings({"MXRELAY_ICS_STRIP": value})
    return IcsScope.from_setting(settings.mime.ics_strip)


def test_default_is_off() -> None:
    scope = IcsScope.from_setting(load_settings({}).mime.ics_strip)
    assert scope.kind is ScopeKind.OFF
    assert not scope.active
    assert not scope.matches("anyone@example.com")


def test_all() -> None:
    scope = _scope("ALL")
    assert scope.kind is ScopeKind.ALL
    assert scope.matches("anyone@example.com")


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("boss@example.com", True),
        ("Boss@EXAMPLE.COM", True),
        ("<boss@example.com>", True),
        ("other@example.com", False),
        ("anyone@tenant.example", True),
        ("anyone@TENANT.example", True),
        ("anyone@sub.tenant.example", False),
        ("jörg@bücher.example", True),
        ("x@xn--bcher-kva.example", True),
        ("x@xn--mnchen-3ya.example", True),
        ("x@münchen.example", True),
        ("no-domain", False),
    ],
)
def test_listed(recipient: str, expected: bool) -> None:
    scope = _scope("Boss@Example.com, @tenant.example, @BÜCHER.example, @xn--mnchen-3ya.example")
    assert scope.kind is ScopeKind.LISTED
    assert scope.matches(recipient) is expected


@pytest.mark.parametrize("value", ["off,@example.com", "all, boss@example.com", "example.com", "@"])
def test_meaningless_settings_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"off|all|neither"):
        _scope(value)


def test_mailbox_parsing() -> None:
    assert Mailbox.parse('"john doe"@Example.COM') == Mailbox("john doe", "example.com")
    assert Mailbox.parse('<"a\\"b"@x.example>') == Mailbox('a"b', "x.example")
    assert Mailbox.parse("u@bücher.example.") == Mailbox("u", "xn--bcher-kva.example")
    assert str(Mailbox.parse("local")) == "local"


@pytest.mark.parametrize(
    ("written", "alabel"),
    [
        ("Example.NET", "example.net"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("faß.de", "xn--fa-hia.de"),  # non-transitional: ß is kept, not mapped to ss
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ],
)
def test_one_idna_conversion_for_settings_mail_and_recipient_checks(
    written: str, alabel: str
) -> None:
    assert to_alabel(written) == alabel
    assert domain_alabel(f" {written}. ") == alabel  # as written in a setting
    assert canonical_domain(f"{written}.") == alabel  # as read from mail
    parsed = analyse(f"<user@{written}>", smtputf8=True)
    assert parsed.domain == alabel  # what the recipient checks look up


def test_only_the_lenient_form_accepts_a_name_idna_refuses() -> None:
    with pytest.raises(idna.IDNAError):
        domain_alabel("a\u200db.example")
    assert canonical_domain("A\u200dB.example") == "a\u200db.example"
    assert canonical_domain("[192.0.2.1]") == "[192.0.2.1]"
