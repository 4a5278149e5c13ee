"""Unclean request paths answered with Mailpit's 301 to the cleaned path."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mxrelay.web.paths import CleanPaths, clean_path


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("/", "/"),
        ("//view/x.html", "/view/x.html"),
        ("/api/v1//message//x", "/api/v1/message/x"),
        ("/a/./b/../c/", "/a/c/"),
        ("/../..", "/"),
        ("///", "/"),
        ("/a b", "/a b"),
    ],
)
def test_clean_path(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


async def test_middleware_redirects_with_the_query_kept() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.path)

    app = CleanPaths(Starlette(routes=[Route("/view/{id}", echo)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as client:
        moved = await client.get("http://relay.test//view/a%20b?embed=1")
        assert moved.status_code == 301
        assert moved.headers["location"] == "/view/a%20b?embed=1"
        assert (await client.get("/view/x")).text == "/view/x"
