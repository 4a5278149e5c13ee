"""Graph mode's sender rules at SMTP time: `MXRELAY_GRAPH_ALLOWED_SENDERS` at MAIL and after DATA.

The envelope sender is checked at MAIL (a null sender waits for the message), then the header
From, the identity Exchange sends as, at the end of DATA; both must be allowed, or the client gets
`550 5.7.1` (`smtp.replies.SENDER_NOT_ALLOWED`) and nothing is queued. The allow-list itself
(canonical addresses, `@domain` entries, a From the relay cannot read) is the Graph transport's
(`delivery/graph/prepare.py`), which applies it again at delivery, so one rule holds at both
ends. Handing it to the SMTP policy's hooks is composition: the engine imports neither `mime`
(the From reader) nor `delivery`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mxrelay.delivery.graph.prepare import address_allowed, message_sender_allowed
from mxrelay.model import Reply, SessionInfo
from mxrelay.smtp.replies import SENDER_NOT_ALLOWED
from mxrelay.smtp.sink import MessageCheck, SenderCheck


def sender_rules(allowed: Sequence[str]) -> tuple[SenderCheck | None, MessageCheck | None]:
    """The checks at MAIL and after DATA for the allow-list `allowed`; none for an empty list."""
    if not allowed:
        return None, None

    def envelope_allowed(mail_from: str, session: SessionInfo) -> Reply | None:
        return None if not mail_from or address_allowed(mail_from, allowed) else SENDER_NOT_ALLOWED

    def message_allowed(mail_from: str, data: bytes) -> Reply | None:
        return None if message_sender_allowed(mail_from, data, allowed) else SENDER_NOT_ALLOWED

    return envelope_allowed, message_allowed
