"""The OpenAPI document and the routes are equal: every route under `/api` (and Mailpit's
`/view` routes) is described, with its methods, and every path the document describes is routed;
the document is valid OpenAPI and `/api/v1/swagger.json` serves it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.core.result import Err
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from mxrelay.app import Relay
from mxrelay.web.api_v1.openapi import document
from tests.support.relay_app import running_relay

DESCRIBED_PREFIXES = ("/api/", "/view/")
"""The routes the document covers: the API, and Mailpit's views for UI tests."""
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options"})

Operation = tuple[str, str]
"""A path with its parameters unnamed (`/api/v1/message/{}`) and a lower-case method."""


def unnamed(path: str) -> str:
    """The path with each `{parameter}` (and any Starlette convertor) written `{}`: the
    document names parameters as Mailpit does (`ID`), the routes as Python does (`id`)."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def flattened(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from flattened(route.routes, prefix + route.path)
        elif isinstance(route, Route | WebSocketRoute):
            yield prefix + route.path, route


def routed(app: object) -> set[Operation]:
    """Every (path, method) the application routes under the described prefixes; a websocket
    is a GET (its upgrade request)."""
    while not isinstance(app, Starlette):
        app = app.app  # type: ignore[attr-defined]  # each middleware wraps the next as `.app`
    found = set()
    for path, route in flattened(app.routes):
        if not path.startswith(DESCRIBED_PREFIXES):
            continue
        if not isinstance(route, Route):  # a websocket: its upgrade request
            found.add((unnamed(path), "get"))
            continue
        for method in route.methods or ():
            if method != "HEAD":  # Starlette answers HEAD wherever it answers GET
                found.add((unnamed(path), method.lower()))
    return found


def described(spec: Mapping[str, Any]) -> set[Operation]:
    paths = spec["paths"]
    return {
        (unnamed(path), method)
        for path, item in paths.items()
        for method in item
        if method in HTTP_METHODS
    }


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    env = {"MXRELAY_DELIVERY": "hold", "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}"}
    async with running_relay(env) as running:
        yield running


def test_the_document_is_valid_openapi() -> None:
    schema = schemathesis.openapi.from_dict(document())
    schema.validate()
    problems = [str(r.err()) for r in schema.get_all_operations() if isinstance(r, Err)]
    assert problems == []


async def test_every_route_is_described_and_every_described_path_routed(relay: Relay) -> None:
    assert relay.web is not None
    routes, spec = routed(relay.web.app), described(document())
    assert routes - spec == set(), "routes the document does not describe"
    assert spec - routes == set(), "described operations that nothing routes"


def test_the_path_parameters_are_declared_as_the_paths_name_them() -> None:
    for path, item in document()["paths"].items():
        named = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
            assert declared == named, f"{method.upper()} {path}"


def test_the_comparison_sees_a_missing_route_and_a_missing_description() -> None:
    app = Starlette(routes=[Route("/api/v1/info", lambda r: None), Route("/", lambda r: None)])
    spec: dict[str, Any] = {
        "paths": {"/api/v1/info": {"get": {}}, "/api/v1/tags": {"get": {}, "put": {}}}
    }
    assert routed(app) == {("/api/v1/info", "get")}
    assert described(spec) - routed(app) == {("/api/v1/tags", "get"), ("/api/v1/tags", "put")}


async def test_swagger_json_serves_the_document(relay: Relay) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as client:
        response = await client.get("/api/v1/swagger.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == document()
    assert response.json()["info"]["version"].startswith("v")
