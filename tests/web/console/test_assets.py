"""The console's static files: served from memory with their type, gzip when asked, a year's
cache only for the current digest, and the integrity value a page names them by."""

from __future__ import annotations

import base64
import gzip
import hashlib
from importlib import resources

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from mxrelay.web.console.assets import IMMUTABLE, Assets


def client(assets: Assets) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/static/{name}", assets.serve)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def test_every_file_is_served_with_its_type_and_cache() -> None:
    assets = Assets("/")
    expected = {
        "console.js": "text/javascript; charset=utf-8",
        "console.css": "text/css; charset=utf-8",
        "htmx-2.0.11.min.js": "text/javascript; charset=utf-8",
        "htmx-LICENSE.txt": "text/plain; charset=utf-8",
        "favicon.svg": "image/svg+xml",
    }
    async with client(assets) as http:
        for name, media_type in expected.items():
            url = assets.url(name)
            assert url.startswith(f"/static/{name}?v=")
            response = await http.get(url, headers={"accept-encoding": "identity"})
            assert response.status_code == 200
            assert response.headers["content-type"] == media_type
            assert response.headers["cache-control"] == IMMUTABLE
            data = resources.files("mxrelay.web.console").joinpath("static", name).read_bytes()
            assert response.content == data
            digest = base64.b64encode(hashlib.sha384(data).digest()).decode()
            assert assets.integrity(name) == f"sha384-{digest}"
        stale = await http.get("/static/console.js?v=0000", headers={"accept-encoding": "identity"})
        assert stale.headers["cache-control"] == "no-cache"
        assert (await http.get("/static/nothing.js")).status_code == 404
        assert (await http.get("/static/..%2fconsole.py")).status_code == 404


async def test_gzip_when_the_browser_takes_it() -> None:
    assets = Assets("/mail/")
    assert assets.url("console.css").startswith("/mail/static/console.css?v=")
    async with client(assets) as http:
        response = await http.get(
            "/static/htmx-2.0.11.min.js", headers={"accept-encoding": "gzip, br"}
        )
        assert response.headers["content-encoding"] == "gzip"
        assert int(response.headers["content-length"]) < 20_000
        raw = resources.files("mxrelay.web.console").joinpath("static", "htmx-2.0.11.min.js")
        assert response.content == raw.read_bytes()  # the client decoded it
        assert gzip.decompress(assets.get("htmx-2.0.11.min.js").gzipped) == raw.read_bytes()  # type: ignore[union-attr]


def test_the_vendored_library_is_the_pinned_release_with_its_licence() -> None:
    static = resources.files("mxrelay.web.console").joinpath("static")
    library = static.joinpath("htmx-2.0.11.min.js").read_bytes()
    assert hashlib.sha256(library).hexdigest() == (
        "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
    )
    assert static.joinpath("htmx-LICENSE.txt").read_text().startswith("Zero-Clause BSD")
