"""The console's static files: read from the package once, served from memory with their type,
a long cache lifetime and, to browsers that take it, gzip.

Each page names an asset by `Assets.url()`, which carries a digest of its bytes in the query, so
a browser may keep a file for a year (`immutable`) and still fetch the new one the day the relay
is upgraded; a request with any other digest (an old page) gets the file with `no-cache`.
`integrity()` is the Subresource Integrity value the page's tag carries. Nothing is fetched from
anywhere else: the one library (htmx) is vendored under `static/` with its licence.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
"""The types the console serves; a file of another kind is not served."""

IMMUTABLE = "public, max-age=31536000, immutable"
MAX_ASSET_BYTES = 512 * 1024
"""A static file larger than this is a packaging mistake, refused at start-up."""


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    content_type: str
    data: bytes
    gzipped: bytes
    version: str
    """The first hex digits of the SHA-256 of `data`: the cache key in asset URLs."""
    integrity: str
    """`sha384-…`, the Subresource Integrity value of `data`."""


def _load(name: str, data: bytes) -> Asset:
    if len(data) > MAX_ASSET_BYTES:
        raise ValueError(f"static file {name} is {len(data)} bytes")
    suffix = name[name.rfind(".") :]
    digest = base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")
    return Asset(
        name=name,
        content_type=TYPES[suffix],
        data=data,
        gzipped=gzip.compress(data, compresslevel=9, mtime=0),
        version=hashlib.sha256(data).hexdigest()[:16],
        integrity=f"sha384-{digest}",
    )


class Assets:
    """Every file of `static/`, loaded when the console is built (never at import time)."""

    def __init__(self, webroot: str) -> None:
        self.webroot = webroot
        folder = resources.files("mxrelay.web.console").joinpath("static")
        self._files = {
            entry.name: _load(entry.name, entry.read_bytes())
            for entry in folder.iterdir()
            if entry.is_file() and entry.name[entry.name.rfind(".") :] in TYPES
        }

    def url(self, name: str) -> str:
        asset = self._files[name]
        return f"{self.webroot}static/{name}?v={asset.version}"

    def integrity(self, name: str) -> str:
        return self._files[name].integrity

    def get(self, name: str) -> Asset | None:
        return self._files.get(name)

    async def serve(self, request: Request) -> Response:
        asset = self._files.get(str(request.path_params["name"]))
        if asset is None:
            return PlainTextResponse("404 page not found", status_code=404)
        current = request.query_params.get("v") == asset.version
        headers = {"cache-control": IMMUTABLE if current else "no-cache", "vary": "accept-encoding"}
        body = asset.data
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            body = asset.gzipped
            headers["content-encoding"] = "gzip"
        return Response(body, media_type=asset.content_type, headers=headers)
