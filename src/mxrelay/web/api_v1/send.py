"""`POST /api/v1/send`: Mailpit's send API, into the relay's own pipeline.

The body is Mailpit's SendRequest (read as Go's decoder reads it, `gojson.py`), built into a message
as Mailpit builds it (`compose.py`), and handed to the relay's `Submit` (`submission.py`): the
sender rules, the recipient checks, the transforms, the store, the queue and delivery are those of
SMTP mail. The answer is Mailpit's: `{"ID": "…"}`, or an error as `{"Error": "…"}` with status 400
for what the request or a permanent refusal (5xx) says, 413 for a body over the bound, and 503 for
a temporary refusal (4xx: a recipient's DNS failed for now, the store could not write), which is
worth retrying. In passthrough mode the message is relayed upstream while the request waits; its
`ID` is then the relay's queue id of the transaction (logged, not stored: nothing can be read back
by it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.model import Peer
from mxrelay.submission import Submit, SubmitResult, Submitted
from mxrelay.web.api_v1.body import TooLarge, read_body
from mxrelay.web.api_v1.compose import (
    SEND_REQUEST,
    Composed,
    ComposeError,
    compose,
    read_send_request,
)
from mxrelay.web.api_v1.gojson import GoJsonError, decode
from mxrelay.web.audit import audit
from mxrelay.web.roles import principal_of

BODY_SLACK = 1024 * 1024
"""Bytes of JSON around the message's content allowed in a request."""


def body_limit(message_size: int) -> int:
    """A request that can carry a message of `message_size` bytes (files are base64: 4/3)."""
    return message_size * 4 // 3 + BODY_SLACK


def http_peer(request: Request) -> Peer:
    client = request.client
    return Peer(client.host, client.port) if client is not None else Peer("0.0.0.0", 0)


def http_user(request: Request) -> str | None:
    """The user the HTTP side authenticated, if it did (recorded as an SMTP AUTH user is)."""
    principal = principal_of(request.scope)
    return principal.user[:255] if principal is not None and principal.user else None


def refusal_text(result: SubmitResult) -> str:
    """Every refusal's SMTP reply, or the reply that ended the submission."""
    if result.refused:
        return "; ".join(str(refused.reply) for refused in result.refused)
    return str(result.reply)


def refusal_status(result: SubmitResult) -> int:
    """400 for a permanent refusal, 503 for a temporary one (worth retrying)."""
    replies = [r.reply for r in result.refused] or [result.reply]
    return 400 if any(reply.is_permanent for reply in replies) else 503


def build_message(raw: bytes, *, now: datetime, hostname: str) -> Composed:
    """The request's message (CPU work proportional to the body: run it off the event loop)."""
    return compose(read_send_request(decode(raw, SEND_REQUEST)), now=now, hostname=hostname)


def _error(text: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"Error": text}, status_code=status)


class Send:
    def __init__(
        self,
        submit: Submit,
        *,
        hostname: str,
        message_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.submit = submit
        self.hostname = hostname
        self.limit = body_limit(message_size)
        self.clock = clock

    async def post(self, request: Request) -> Response:
        try:
            raw = await read_body(request, self.limit)
        except TooLarge as exc:
            return _error(str(exc), 413)
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            composed = await asyncio.to_thread(build_message, raw, now=now, hostname=self.hostname)
        except (GoJsonError, ComposeError) as exc:
            return _error(str(exc))
        result = await self.submit(
            Submitted(
                peer=http_peer(request),
                mail_from=composed.mail_from,
                recipients=composed.recipients,
                data=composed.data,
                username=http_user(request),
                smtputf8=composed.smtputf8,
            )
        )
        recipients = composed.recipients
        if not result.accepted or result.message_id is None:
            await audit(request, action="send", target=recipients, outcome="refused")
            return _error(refusal_text(result), refusal_status(result))
        await audit(request, action="send", target=result.message_id, count=len(recipients))
        return JSONResponse({"ID": result.message_id})


@dataclass(frozen=True, slots=True)
class Sending:
    """What the relay hands the API for mail it takes in: the pipeline, the host name for new
    Message-IDs, and the largest message the SMTP listener takes."""

    submit: Submit
    hostname: str
    message_size: int


def routes(sending: Sending | None) -> list[BaseRoute]:
    """The send route, when the relay hands the API a pipeline to submit to."""
    if sending is None:
        return []
    resource = Send(sending.submit, hostname=sending.hostname, message_size=sending.message_size)
    return [Route("/api/v1/send", resource.post, methods=["POST"])]
