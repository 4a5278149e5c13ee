"""The audit log as the web writes and serves it: a handler's one-line `audit(...)`, the trail's
own entry for a state-changing request no handler described (a viewer's refused attempt
included), nothing for unauthenticated noise or reads, and `GET /api/v1/mxrelay/audit` paged
and filtered, over real HTTP against a running relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mxrelay.app import Relay
from mxrelay.config import WebSettings
from mxrelay.store.audit import list_audit
from mxrelay.store.backend import Database
from mxrelay.web.audit import Auditor, AuditTrail, audit, describe_target
from mxrelay.web.auth import BasicAuth, WebUsers
from tests.support.htpasswd import htpasswd_file
from tests.support.polling import until
from tests.support.relay_app import running_relay

NOW = 1_800_000_000.0


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    users = htpasswd_file(tmp_path / "users", 4, alice="alice-pw", bob="bob-pw")
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_UI_AUTH_FILE": str(users),
        "MXRELAY_UI_OPERATORS": "alice",
    }
    async with running_relay(env) as running:
        yield running


def client(relay: Relay, user: str | None = None) -> httpx.AsyncClient:
    auth = httpx.BasicAuth(user, f"{user}-pw") if user else None
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}", auth=auth)


async def test_state_changing_requests_are_recorded_reads_and_strangers_are_not(
    relay: Relay,
) -> None:
    async with client(relay, "alice") as alice, client(relay, "bob") as bob:
        async with client(relay) as stranger:
            assert (await stranger.delete("/api/v1/messages")).status_code == 401
        assert (await alice.get("/api/v1/messages")).status_code == 200
        assert (await alice.delete("/api/v1/search?query=from:x")).status_code == 200
        assert (await bob.put("/api/v1/tags", json={"IDs": [], "Tags": []})).status_code == 403
        response = await bob.get("/api/v1/mxrelay/audit")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"Total", "Start", "Count", "Entries"}
    assert (body["Total"], body["Start"], body["Count"]) == (2, 0, 2)
    denied, refused = body["Entries"]
    assert denied["Actor"] == "bob"
    assert denied["Client"] == "127.0.0.1"
    assert denied["Action"] == "PUT /api/v1/tags"
    assert denied["Outcome"] == "denied"
    assert refused["Actor"] == "alice"
    assert refused["Action"] == "delete"  # described by the route itself
    assert refused["Target"] == "query=from:x"
    assert refused["Count"] == 0
    assert refused["Outcome"] == "ok"
    assert refused["At"].endswith("Z")
    assert denied["ID"] > refused["ID"]
    assert set(denied) == {"ID", "At", "Actor", "Client", "Action", "Target", "Count", "Outcome"}


async def test_the_audit_route_pages_and_filters(relay: Relay) -> None:
    async with client(relay, "alice") as alice:
        for _ in range(3):
            await alice.delete("/api/v1/messages")
        async with client(relay, "bob") as bob:
            await bob.delete("/api/v1/messages")

        async def page(query: str) -> dict[str, object]:
            response = await alice.get(f"/api/v1/mxrelay/audit?{query}")
            assert response.status_code == 200, response.text
            result: dict[str, object] = response.json()
            return result

        async def all_recorded() -> bool:
            return (await page("limit=1"))["Total"] == 4

        # A viewer's refused attempt is recorded as its answer goes out: wait for the fourth.
        await until(all_recorded, what="four audit entries")
        second = await page("start=1&limit=2")
        assert (second["Total"], second["Start"], second["Count"]) == (4, 1, 2)
        assert (await page("actor=bob"))["Total"] == 1
        assert (await page("actor=alice&outcome=ok"))["Total"] == 3
        assert (await page("action=delete"))["Total"] == 3  # as the route describes it
        assert (await page("action=DELETE%20/api/v1/messages"))["Total"] == 1  # bob's, denied
        assert (await page("since=2000-01-01T00:00:00Z&until=4102444800"))["Total"] == 4
        assert (await page("until=2000-01-01T00:00:00%2B00:00"))["Total"] == 0
        assert (await page("until=2000-01-01T00:00:00"))["Total"] == 0  # zone-less is UTC
        assert (await page("actor=" + "a" * 300))["Total"] == 0  # longer than any user name
        bad_values = ("since=yesterday", "until=1e999", "since=-1", "limit=x", "actor=a%00b")
        for bad in (*bad_values, "actor=" + "a" * 600):
            response = await alice.get(f"/api/v1/mxrelay/audit?{bad}")
            assert response.status_code == 400, bad
        assert (await alice.get("/api/v1/audit")).status_code == 404  # not Mailpit's, not here


async def test_without_a_store_the_audit_route_is_not_found_and_actions_still_answer(
    tmp_path: Path,
) -> None:
    env = {"MXRELAY_DELIVERY": "passthrough", "MXRELAY_UPSTREAM": "smtp://127.0.0.1:9"}
    async with running_relay(env) as relay, client(relay) as anyone:
        assert (await anyone.get("/api/v1/mxrelay/audit")).status_code == 404
        assert (await anyone.delete("/api/v1/messages")).status_code == 404  # no log to act on


# -- a handler's own entry, through the same middlewares ------------------------------------------


async def described(request: Request) -> Response:
    ids = [f"01J{n:023d}" for n in range(150)]
    await audit(request, action="delete", target=ids, count=len(ids))
    return PlainTextResponse("ok")


async def failing(request: Request) -> Response:
    raise RuntimeError("the store went away")


async def test_a_handler_describes_its_action_in_one_line(db: Database, tmp_path: Path) -> None:
    users = htpasswd_file(tmp_path / "users", 4, alice="alice-pw")
    routes = Starlette(
        routes=[
            Route("/things", described, methods=["DELETE"]),
            Route("/broken", failing, methods=["POST"]),
        ]
    )
    web_users = WebUsers.load(WebSettings(ui_auth_file=users, ui_operators=("alice",)))
    app = AuditTrail(
        BasicAuth(routes, web_users, failure_limit=10), Auditor(lambda: db, lambda: NOW)
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("192.0.2.9", 1))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", auth=httpx.BasicAuth("alice", "alice-pw")
    ) as http:
        assert (await http.delete("/things")).text == "ok"
        assert (await http.post("/broken")).status_code == 500
    web_users.close()
    page = await list_audit(db, 0, 10)
    assert page.total == 2  # one entry each: the handler's, and the trail's for the failure
    broken, deleted = (record.entry for record in page.records)
    assert (deleted.actor, deleted.client, deleted.at) == ("alice", "192.0.2.9", NOW)
    assert (deleted.action, deleted.count, deleted.outcome) == ("delete", 150, "ok")
    assert deleted.target.startswith("01J00000000000000000000000,01J")
    assert deleted.target.endswith(",… (+50 more)")
    assert (broken.action, broken.outcome) == ("POST /broken", "error")


def test_describe_target() -> None:
    assert describe_target("query=from:x") == "query=from:x"
    assert describe_target(["a", "b"]) == "a,b"
    assert describe_target([]) == ""
    assert describe_target([str(n) for n in range(101)]).endswith("99,… (+1 more)")
