"""A request body read within a size bound, before anything looks at it.

`read_body` takes at most `limit` bytes of a request and raises `TooLarge` past them, before the
rest is read (a declared `Content-Length` over the bound is refused without reading at all). What
the bytes say is `gojson.py`'s to read.
"""

from __future__ import annotations

from starlette.requests import Request


class TooLarge(Exception):
    """The body is larger than the route takes: 413, with this text."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"http: request body too large (over {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"http: request body too large (over {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)
