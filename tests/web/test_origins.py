"""Cross-site refusal and CORS: the decision as a table, then over real HTTP with the headers a
browser sends (a page elsewhere acting with the user's stored login is refused; the relay's own
page, scripts without browser headers and listed origins pass; preflights are answered without a
login), and the websocket handshake checked like a state-changing request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from mxrelay.app import Relay
from mxrelay.web.origins import CorsPolicy, OriginCheck, Verdict, judge
from tests.support.htpasswd import htpasswd_file
from tests.support.relay_app import running_relay

ALLOW, CORS, REFUSE = Verdict.ALLOW, Verdict.ALLOW_CORS, Verdict.REFUSE
LISTED = CorsPolicy.build(["https://app.example.com", "tools.example.org:8443"])
HOST = "relay.example.net:8025"
OWN = "http://relay.example.net:8025"

JUDGED = [
    # (method, Origin, Sec-Fetch-Site, websocket, verdict)
    ("GET", None, None, False, ALLOW),  # curl, scripts
    ("DELETE", None, None, False, ALLOW),
    ("POST", None, "none", False, ALLOW),  # typed by the user
    ("GET", None, "cross-site", False, ALLOW),  # a link followed from elsewhere
    ("HEAD", None, "same-site", False, ALLOW),
    ("OPTIONS", None, "cross-site", False, ALLOW),
    ("POST", None, "cross-site", False, REFUSE),  # a form posted from elsewhere
    ("DELETE", None, "same-site", False, REFUSE),  # a sibling subdomain is another site
    ("PUT", None, "Cross-Site", False, REFUSE),
    ("GET", None, "cross-site", True, REFUSE),  # a websocket opened from elsewhere
    ("DELETE", OWN, "same-origin", False, ALLOW),  # the relay's own page
    ("DELETE", OWN.upper(), None, False, ALLOW),
    ("GET", OWN, "same-origin", True, ALLOW),
    ("DELETE", OWN, "cross-site", False, REFUSE),  # the headers disagree: refused
    ("GET", "https://evil.example", "cross-site", False, REFUSE),  # Mailpit refuses these too
    ("DELETE", "https://evil.example", "cross-site", False, REFUSE),
    ("DELETE", "https://evil.example", None, False, REFUSE),
    ("GET", "https://evil.example", None, True, REFUSE),
    ("POST", "null", None, False, REFUSE),  # a sandboxed frame, a data: page
    ("POST", "http://relay.example.net", None, False, REFUSE),  # another port
    ("POST", "http://relay.example.net:8025.evil.example", None, False, REFUSE),
    ("DELETE", "https://app.example.com", "cross-site", False, CORS),
    ("GET", "https://app.example.com", "cross-site", True, CORS),
    ("DELETE", "http://app.example.com", "cross-site", False, REFUSE),  # listed with https only
    ("DELETE", "https://app.example.com:444", "cross-site", False, REFUSE),
    ("PUT", "http://tools.example.org:8443", "cross-site", False, CORS),  # any scheme
    ("PUT", "https://TOOLS.example.org:8443", "cross-site", False, CORS),
    ("PUT", "https://tools.example.org", "cross-site", False, REFUSE),
]


@pytest.mark.parametrize(("method", "origin", "site", "websocket", "verdict"), JUDGED)
def test_judge(
    method: str, origin: str | None, site: str | None, websocket: bool, verdict: Verdict
) -> None:
    found = judge(
        method, origin=origin, fetch_site=site, host=HOST, websocket=websocket, cors=LISTED
    )
    assert found is verdict


def test_a_star_lets_every_origin_in() -> None:
    anyone = CorsPolicy.build(["https://app.example.com", "*"])
    for origin in ("https://evil.example", "null"):
        verdict = judge("DELETE", origin=origin, fetch_site="cross-site", host=HOST,
                        websocket=False, cors=anyone)  # fmt: skip
        assert verdict is CORS


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    users = htpasswd_file(tmp_path / "users", 4, alice="pw")
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "MXRELAY_UI_AUTH_FILE": str(users),
        "MXRELAY_UI_OPERATORS": "alice",
        "MXRELAY_UI_CORS_ORIGINS": "https://app.example.com",
    }
    async with running_relay(env) as running:
        yield running


def browser(port: int, page: str | None, site: str) -> dict[str, str]:
    """The headers a browser adds to a fetch a page at `page` makes to the relay."""
    headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors", "Host": f"localhost:{port}"}
    if page is not None:
        headers["Origin"] = page
    return headers


async def request(port: int, method: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        return await client.request(
            method, "/api/v1/messages", headers=headers, auth=httpx.BasicAuth("alice", "pw")
        )


async def test_a_page_elsewhere_cannot_act_with_the_users_login(relay: Relay) -> None:
    port = relay.web_port
    for method in ("DELETE", "PUT", "POST"):
        for headers in (
            browser(port, "https://evil.example", "cross-site"),
            browser(port, None, "cross-site"),
            browser(port, "https://evil.corp.example", "same-site"),
        ):
            response = await request(port, method, headers)
            assert response.status_code == 403, (method, headers)
            assert response.text == "Blocked due to CORS violation\n"
            assert "access-control-allow-origin" not in response.headers
    reading = await request(port, "GET", browser(port, "https://evil.example", "cross-site"))
    assert reading.status_code == 403
    followed_link = await request(port, "GET", browser(port, None, "cross-site"))
    assert followed_link.status_code == 200


async def test_the_relays_own_page_and_scripts_act(relay: Relay) -> None:
    port = relay.web_port
    own = await request(port, "DELETE", browser(port, f"http://localhost:{port}", "same-origin"))
    assert own.status_code == 200  # past both checks: the log is emptied
    script = await request(port, "DELETE", {})
    assert script.status_code == 200


async def test_a_listed_origin_gets_mailpits_cors_answers(relay: Relay) -> None:
    port = relay.web_port
    page = "https://app.example.com"
    response = await request(port, "GET", browser(port, page, "cross-site"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == page
    assert response.headers["access-control-allow-methods"] == "GET, POST, DELETE, PUT, OPTIONS"
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert "Origin" in response.headers["vary"]
    acting = await request(port, "DELETE", browser(port, page, "cross-site"))
    assert acting.status_code == 200
    assert acting.headers["access-control-allow-origin"] == page


async def test_preflights_are_answered_without_a_login(relay: Relay) -> None:
    port = relay.web_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        preflight = await client.options(
            "/api/v1/messages",
            headers={
                **browser(port, "https://app.example.com", "cross-site"),
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.content == b""
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "DELETE" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-max-age"] == "600"
        foreign = await client.options(
            "/api/v1/messages",
            headers={
                **browser(port, "https://evil.example", "cross-site"),
                "Access-Control-Request-Method": "DELETE",
            },
        )
        assert foreign.status_code == 403
        plain = await client.options("/api/v1/messages")
        assert (plain.status_code, plain.content) == (200, b"")
        assert "access-control-allow-origin" not in plain.headers


async def test_a_websocket_upgrade_from_elsewhere_is_refused_over_http(relay: Relay) -> None:
    """The handshake as a browser sends it, from a page elsewhere: refused before anything."""
    port = relay.web_port
    headers = {
        **browser(port, "https://evil.example", "cross-site"),
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/api/events", headers=headers)
    assert response.status_code == 403


async def test_a_websocket_scope_from_elsewhere_is_refused() -> None:
    reached: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append("app")

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    check = OriginCheck(app, CorsPolicy())
    for origin, allowed in ((b"https://evil.example", False), (b"http://localhost:8025", True)):
        reached.clear()
        sent.clear()
        scope = {
            "type": "websocket",
            "path": "/api/events",
            "headers": [(b"host", b"localhost:8025"), (b"origin", origin)],
            "client": ("127.0.0.1", 5000),
            "extensions": {"websocket.http.response": {}},
        }
        await check(scope, receive, send)
        assert bool(reached) is allowed
        if not allowed:
            assert sent[0]["type"] == "websocket.http.response.start"
            assert sent[0]["status"] == 403
