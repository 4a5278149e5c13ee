"""Doubled slashes and dot segments in a request path, answered as Mailpit's router answers them.

Mailpit's router (gorilla/mux) answers a path that is not clean (`//view/x.html`,
`/api/v1//message/x`, `/a/./b`, `/a/../b`) with `301 Moved Permanently` to the cleaned path,
query string kept; clients that build URLs by joining a base URL ending in `/` with a path
starting with `/` (cypress-mailpit) rely on it. `CleanPaths` does the same before routing.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

PATH_SAFE = "/:@!$&'()*+,;=-._~"


def clean_path(path: str) -> str:
    """Go's `path.Clean` of a rooted path, keeping a trailing slash (gorilla's `cleanPath`)."""
    if not path.startswith("/"):
        path = "/" + path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    cleaned = "/" + "/".join(segments)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


class CleanPaths:
    """ASGI middleware: 301 to the cleaned path for an HTTP request whose path is not clean."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            cleaned = clean_path(path)
            if cleaned != path:
                location = quote(cleaned, safe=PATH_SAFE)
                query = scope.get("query_string", b"")
                if query:
                    location += "?" + query.decode("latin-1")
                response = Response(status_code=301, headers={"Location": location})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
