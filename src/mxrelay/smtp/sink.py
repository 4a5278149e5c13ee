"""The contracts between the relay policy and what it is handed: the sink and the check callables.

`RelayPolicy` (policy.py) asks a `RecipientCheck` at RCPT, optional sender and message checks at
MAIL and after DATA, and hands each transaction to a `Sink` (the store and queue, or passthrough).
The types live here, apart from the engine and the policy, so that the engine's
transaction record can hold a sink transaction and the sinks can implement these protocols without
either side importing the other. Nothing here does anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable

from mxrelay.model import (
    MailParams,
    RecipientVerdict,
    RefusedRecipient,
    Reply,
    SessionInfo,
    Transaction,
)

RecipientCheck = Callable[[str, bool], Awaitable[RecipientVerdict]]
"""(forward-path as written in RCPT, including the angle brackets; smtputf8) → verdict."""

SenderCheck = Callable[[str, SessionInfo], Reply | None]
"""(envelope sender, session) → a refusal, or None to accept. Mode-specific sender rules."""

MessageCheck = Callable[[str, bytes], Reply | None]
"""(envelope sender, message) → a refusal, or None to accept; runs at the end of DATA, before
the sink sees the message (e.g. the header From against Graph's sender allow-list)."""


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


@runtime_checkable
class DescribedTransaction(Protocol):
    """A sink transaction that adds fields to the transaction log line (queue id, transforms)."""

    def log_fields(self) -> Mapping[str, object]: ...


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
