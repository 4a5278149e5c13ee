"""`POST /api/v1/message/{ID}/release`: a copy of a stored message, for other recipients, through
the relay's own pipeline.

Mailpit relays the message to its configured SMTP server there and then, records nothing, and
changes it on the way (new Date and Message-ID, sender from the headers). Here the copy enters the
pipeline SMTP mail enters (`submission.py`): each address of `To` is checked as an RCPT is (a
refused one answers 400 `SMTP error: <the reply>` and nothing is sent), then the transforms, the
store, the queue and delivery. It is stored as a new message, linked to the original
(`messages.released_from`, shown by `/deliveries`). The copy is the stored message as received,
with its `Bcc:` fields removed (the new recipients must not learn the original's blind copies),
from the original envelope sender; its Date and Message-ID are kept, so the copy can be traced to
the original. `ID` may be `latest`. Errors are Mailpit's texts (`No valid addresses found`,
`Invalid email address: …`) with status 400 (503 for a temporary refusal), 404 for an unknown
message.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mxrelay.mime.parse import scan_headers
from mxrelay.mime.splice import Splice, apply_splices
from mxrelay.store.message_log import get_message, get_raw
from mxrelay.store.releases import link_release
from mxrelay.store.search import SearchQuery, search_messages
from mxrelay.submission import Submit, Submitted
from mxrelay.web.api_v1.body import TooLarge, read_body
from mxrelay.web.api_v1.compose import parse_address
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found
from mxrelay.web.api_v1.gojson import STRINGS, Field, GoJsonError, decode
from mxrelay.web.api_v1.send import (
    Sending,
    http_peer,
    http_user,
    refusal_status,
    refusal_text,
)
from mxrelay.web.audit import audit

BODY_LIMIT = 256 * 1024
"""Bytes of a release request (a list of addresses)."""

RELEASE_REQUEST = (Field("To", STRINGS),)


def without_bcc(data: bytes) -> bytes:
    """The message without its top-level `Bcc:` fields; every other byte as it was."""
    block = scan_headers(data)
    return apply_splices(
        data, [Splice(field.start, field.end) for field in block.fields if field.key == "bcc"]
    )


def _text(text: str, status: int = 400) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


class Release:
    def __init__(self, context: ApiContext, submit: Submit) -> None:
        self.context = context
        self.submit = submit

    async def post(self, request: Request) -> Response:
        try:
            database = self.context.store()
        except NoStore:
            return not_found()
        ident = str(request.path_params["id"])
        if ident == "latest":
            newest = await search_messages(database, SearchQuery(), limit=1)
            if not newest:
                return not_found()
            ident = newest[0].id
        view = await get_message(database, ident)
        if view is None:
            return not_found()
        try:
            to = decode(await read_body(request, BODY_LIMIT), RELEASE_REQUEST).texts("To")
        except TooLarge as exc:
            return _text(str(exc), 413)
        except GoJsonError as exc:
            return _text(str(exc))
        if not to:
            return _text("No valid addresses found")
        recipients = []
        for entry in to:
            address = parse_address(entry)
            if address is None:
                return _text(f"Invalid email address: {entry}")
            recipients.append(address.addr_spec)
        raw = await get_raw(database, ident)
        if raw is None:
            return _text(
                "the message's body is no longer stored (retention): it cannot be released"
            )
        result = await self.submit(
            Submitted(
                peer=http_peer(request),
                mail_from=view.mail_from,
                recipients=tuple(recipients),
                data=without_bcc(raw),
                username=http_user(request),
                smtputf8=not all(a.isascii() for a in (view.mail_from, *recipients)),
            )
        )
        if not result.accepted:
            await audit(request, action="release", target=ident, outcome="refused")
            return _text(f"SMTP error: {refusal_text(result)}", refusal_status(result))
        await audit(request, action="release", target=ident, count=len(recipients))
        if result.stored and result.message_id is not None:
            await link_release(database, result.message_id, ident)
        return PlainTextResponse("ok")


def routes(context: ApiContext, sending: Sending | None) -> list[BaseRoute]:
    if sending is None:
        return []
    resource = Release(context, sending.submit)
    return [Route("/api/v1/message/{id}/release", resource.post, methods=["POST"])]
