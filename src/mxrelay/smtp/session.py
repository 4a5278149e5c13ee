"""Per-connection and per-transaction state (as aiosmtpd separates Session from Envelope).

`Session` lives as long as the connection; `Envelope` is replaced after RSET, after DATA and after a
new HELO/EHLO. Both are plain mutable records owned by one connection's task; what crosses into the
rest of the relay is the frozen `SessionInfo`/`Transaction` built from them. The envelope carries
the sink's transaction (`sink.py`), opened at the first accepted recipient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mxrelay.model import MailParams, Peer, RefusedRecipient, SessionInfo, TlsInfo
from mxrelay.smtp.sink import SinkTransaction


@dataclass(slots=True)
class Session:
    peer: Peer
    helo: str = ""
    esmtp: bool = False
    tls: TlsInfo | None = None
    username: str | None = None
    errors: int = 0
    """Errors since the last accepted message (MXRELAY_SMTP_ERROR_LIMIT)."""
    junk_commands: int = 0
    """NOOP, RSET, VRFY, HELP and repeated HELO/EHLO since the last accepted message."""

    def info(self) -> SessionInfo:
        return SessionInfo(
            peer=self.peer, helo=self.helo, esmtp=self.esmtp, tls=self.tls, username=self.username
        )


@dataclass(slots=True)
class Envelope:
    """One transaction in progress: from MAIL until DATA's reply, RSET or the end of the session."""

    mail_from: str
    params: MailParams
    started: float
    smtputf8: bool = False
    body_8bitmime: bool = False
    sink: SinkTransaction | None = None
    accepted: list[str] = field(default_factory=list)
    """The mailboxes accepted at RCPT, in order."""
    refused: list[RefusedRecipient] = field(default_factory=list)
    """The first refused recipients (MXRELAY_SMTP_REFUSAL_LOG_LIMIT), each recorded and logged."""
    refused_more: int = 0
    """Recipients refused past that limit: only counted."""
    excess_recipients: int = 0
    """RCPTs answered 452 because the recipient limit was reached."""
