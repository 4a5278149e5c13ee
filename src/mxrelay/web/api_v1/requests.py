"""What the message-list routes share in reading a request: the store (404 without one, as
Mailpit answers for what it does not have), a JSON body read with a bound and Go's rules
(`gojson.py`), and Mailpit's plain-text answers. A handler wrapped in `answering` raises
`Answered` with the response to send instead of going on."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mxrelay.store.backend import Database
from mxrelay.web.api_v1.body import TooLarge
from mxrelay.web.api_v1.body import read_body as bounded_body
from mxrelay.web.api_v1.context import ApiContext, NoStore, not_found
from mxrelay.web.api_v1.gojson import Field, GoJsonError, GoObject, decode

BODY_LIMIT = 1024 * 1024
"""Bytes of a request body read (a JSON list of ten thousand message ids is a third of it)."""
MAX_IDS = 10_000
"""Message ids one request may name."""

R = TypeVar("R")


class Answered(Exception):
    """The request is answered with `response` (an error, mostly)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def answering(
    handler: Callable[[R, Request], Awaitable[Response]],
) -> Callable[[R, Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def answer(resource: R, request: Request) -> Response:
        try:
            return await handler(resource, request)
        except Answered as answered:
            return answered.response

    return answer


def opened(context: ApiContext) -> Database:
    try:
        return context.store()
    except NoStore:
        raise Answered(not_found()) from None


def ok() -> PlainTextResponse:
    return PlainTextResponse("ok")


def bad_request(text: str) -> PlainTextResponse:
    """Mailpit's `httpError`: 400 with the reason as plain text."""
    return PlainTextResponse(text, status_code=400)


async def read_body(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The request body, read no further than `limit` bytes (`body.read_body`): beyond, 413
    (never a body that reads as empty, which some routes take as "every message")."""
    try:
        return await bounded_body(request, limit)
    except TooLarge:
        raise Answered(
            PlainTextResponse(f"request body too large (at most {limit} bytes)", status_code=413)
        ) from None


async def body_fields(request: Request, fields: Sequence[Field]) -> GoObject:
    """The struct of `fields` the JSON body fills; 400 with Go's words when it is not that JSON."""
    try:
        return decode(await read_body(request), fields)
    except GoJsonError as exc:
        raise Answered(bad_request(str(exc))) from None


def bounded_ids(ids: Sequence[str]) -> list[str]:
    if len(ids) > MAX_IDS:
        raise Answered(bad_request(f"too many IDs (at most {MAX_IDS})"))
    return list(ids)
