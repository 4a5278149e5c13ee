"""What the relay decides during an SMTP session, separate from how the protocol is spoken.

The engine (`server.py`) calls these hooks; they return `Reply` values. The recipient check and the
message sink arrive as callables/protocols typed here, so the SMTP package never imports DNS, MIME or
storage code: `app.py` wires the real ones in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from mxrelay.model import RecipientVerdict, RefusedRecipient, Reply, SessionInfo, Transaction

RecipientCheck = Callable[[str, bool], Awaitable[RecipientVerdict]]
"""(forward-path as written in RCPT, including the angle brackets; smtputf8) → verdict."""

MailParams = tuple[tuple[str, str | None], ...]


class SinkTransaction(Protocol):
    """One SMTP transaction as the sink sees it: opened at MAIL, fed recipients, then finished.

    Passthrough forwards each step to the upstream while the client waits (a before-queue proxy);
    the store accepts recipients at once and commits the message durably in `finish`.
    """

    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        """Called for a recipient the check accepted; the reply is what the client gets."""
        ...

    async def finish(self, transaction: Transaction) -> Reply:
        """Called after DATA with the whole message; 2xx only once it is safe with someone."""
        ...

    async def abort(self) -> None:
        """The transaction ended without a message (RSET, QUIT, disconnect, refused DATA)."""
        ...


class Sink(Protocol):
    """Where accepted transactions go (passthrough upstream, or the store and queue)."""

    def begin(
        self, session: SessionInfo, mail_from: str, params: MailParams
    ) -> SinkTransaction: ...

    async def record_refusal(
        self, session: SessionInfo, mail_from: str, refused: RefusedRecipient
    ) -> None:
        """Keep a record of a refused recipient (the store logs it; passthrough only logs)."""
        ...
