"""Mail that enters without SMTP: the contract between the HTTP API and the relay's pipeline.

`POST /api/v1/send` and `POST /api/v1/message/{ID}/release` build a `Submitted` (an envelope and
a message) and hand it to a `Submit` callable; the composition root's `runtime/submit.py` puts it
through the relay policy's own hooks, so the sender rules, the recipient checks, the transforms,
the store, the queue and delivery are those of SMTP mail. The answer is a `SubmitResult`. The web
package and the runtime both import this module, and it imports only `model`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mxrelay.model import Peer, RefusedRecipient, Reply


@dataclass(frozen=True, slots=True)
class Submitted:
    """One message and its envelope, as an API call hands it in."""

    peer: Peer
    """The HTTP client (its address is recorded like an SMTP client's)."""
    mail_from: str
    """The envelope sender (may be empty: a null sender)."""
    recipients: tuple[str, ...]
    """Addresses (addr-specs, no angle brackets), each checked as an RCPT is."""
    data: bytes
    """The message, CRLF line ends."""
    username: str | None = None
    """Who is authenticated on the HTTP side, recorded as an SMTP AUTH user is."""
    smtputf8: bool = False
    """The envelope or the header needs SMTPUTF8 (non-ASCII addresses)."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the pipeline made of a submission."""

    reply: Reply
    """The final answer: the message's (`250 … queued as …`), or the first refusal."""
    refused: tuple[RefusedRecipient, ...] = ()
    """Every recipient the checks refused (then nothing was sent: a submission is whole)."""
    message_id: str | None = None
    """The stored message's id, or the passthrough transaction's queue id; None when refused."""
    stored: bool = False
    """Whether `message_id` names a message of the log (False in passthrough mode)."""

    @property
    def accepted(self) -> bool:
        return self.reply.is_positive and not self.refused


Submit = Callable[[Submitted], Awaitable[SubmitResult]]
"""Puts a submission through the relay's pipeline."""
