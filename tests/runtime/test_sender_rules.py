"""Graph's sender allow-list as the SMTP policy's checks: the envelope sender at MAIL, then the
envelope sender and the header From at the end of DATA, each refused with `550 5.7.1`."""

from __future__ import annotations

import pytest

from mxrelay.model import Peer, SessionInfo
from mxrelay.runtime.sender_rules import sender_rules
from mxrelay.smtp.replies import SENDER_NOT_ALLOWED

ALLOWED = ("app@contoso.example", "@apps.example.org")
SESSION = SessionInfo(Peer("127.0.0.1", 40000), helo="app.example.net", esmtp=True)


def test_no_list_no_checks() -> None:
    assert sender_rules(()) == (None, None)


@pytest.mark.parametrize(
    ("mail_from", "allowed"),
    [
        ("app@contoso.example", True),
        ("App@CONTOSO.example", True),
        ("billing@apps.example.org", True),
        ("", True),  # a null sender waits for the header From
        ("ceo@contoso.example", False),
        ("app@contoso.example.evil", False),
    ],
)
def test_the_envelope_sender_at_mail(mail_from: str, allowed: bool) -> None:
    at_mail, _ = sender_rules(ALLOWED)
    assert at_mail is not None
    assert at_mail(mail_from, SESSION) is (None if allowed else SENDER_NOT_ALLOWED)


@pytest.mark.parametrize(
    ("mail_from", "data", "allowed"),
    [
        ("app@contoso.example", b"From: app@contoso.example\r\n\r\nbody", True),
        ("", b"From: billing@apps.example.org\r\n\r\nbody", True),
        ("app@contoso.example", b"From: ceo@elsewhere.example\r\n\r\nbody", False),
        ("ceo@elsewhere.example", b"From: app@contoso.example\r\n\r\nbody", False),
        ("", b"Subject: no From\r\n\r\nbody", False),  # neither identity: nothing to allow
    ],
)
def test_both_identities_at_the_end_of_data(mail_from: str, data: bytes, allowed: bool) -> None:
    _, after_data = sender_rules(ALLOWED)
    assert after_data is not None
    assert after_data(mail_from, data) is (None if allowed else SENDER_NOT_ALLOWED)


def test_the_refusal_is_550_5_7_1() -> None:
    assert (SENDER_NOT_ALLOWED.code, SENDER_NOT_ALLOWED.enhanced) == (550, "5.7.1")
