"""HTTP Basic authentication with roles, over real HTTP against a running relay whose users files
`htpasswd -B` wrote: 401 with a challenge, 403 for a viewer acting, 429 for a guessing client,
the send API's own users, open probes, an untouched metrics port, no secret in any log line.
Where a running relay cannot be made to answer so (a full check pool, a websocket handshake), the
middleware is driven directly."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import bcrypt
import httpx
import pytest
from starlette.types import Message

from mxrelay.app import Relay, StartupError
from mxrelay.config import WebSettings
from mxrelay.passwords import CheckPool, UserTable
from mxrelay.web.auth import BasicAuth, WebUsers, basic_credentials
from mxrelay.web.roles import principal_of
from tests.support.htpasswd import htpasswd_file, htpasswd_line
from tests.support.relay_app import running_relay

PASSWORDS = {"alice": "alice's pass: phrase", "bob": "b0b-pa55", "app": "s3nd-only"}
CHALLENGE = 'Basic realm="mxrelay"'


@pytest.fixture
def ui_users(tmp_path: Path) -> Path:
    return htpasswd_file(tmp_path / "ui-users", 4, alice=PASSWORDS["alice"], bob=PASSWORDS["bob"])


@pytest.fixture
def send_users(tmp_path: Path) -> Path:
    return htpasswd_file(tmp_path / "send-users", 4, app=PASSWORDS["app"])


def hashes_in(path: Path) -> list[str]:
    return [line.split(":", 1)[1] for line in path.read_text().splitlines()]


def relay_env(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        **env,
    }


@pytest.fixture
async def relay(tmp_path: Path, ui_users: Path) -> AsyncIterator[Relay]:
    env = relay_env(tmp_path, MXRELAY_UI_AUTH_FILE=str(ui_users), MXRELAY_UI_OPERATORS="alice")
    async with running_relay(env) as running:
        yield running


def as_user(user: str | None, password: str | None = None) -> httpx.BasicAuth | None:
    if user is None:
        return None
    return httpx.BasicAuth(user, PASSWORDS.get(user, "") if password is None else password)


async def call(
    port: int,
    method: str,
    path: str,
    user: str | None = None,
    password: str | None = None,
    **kwargs: object,
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        return await client.request(method, path, auth=as_user(user, password), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("alice", "wrong"), ("alice", ""), ("mallory", "alice's pass: phrase")],
)
async def test_without_good_credentials_every_route_is_401_with_a_challenge(
    relay: Relay, user: str | None, password: str | None
) -> None:
    for method, path in [
        ("GET", "/"),
        ("GET", "/api/v1/messages"),
        ("GET", "/api/v1/info"),
        ("GET", "/api/v1/mxrelay/audit"),
        ("DELETE", "/api/v1/messages"),
        ("POST", "/api/v1/send"),
        ("GET", "/no/such/route"),
    ]:
        response = await call(relay.web_port, method, path, user, password)
        assert response.status_code == 401, (method, path)
        assert response.reason_phrase == "Unauthorized"
        assert response.headers["www-authenticate"] == CHALLENGE
        assert response.text == "Unauthorized.\n"


async def test_a_viewer_reads_and_gets_403_for_acting(relay: Relay) -> None:
    for path in ("/", "/api/v1/messages", "/api/v1/info", "/api/v1/mxrelay/audit"):
        assert (await call(relay.web_port, "GET", path, "bob")).status_code == 200, path
    for method, path in [
        ("DELETE", "/api/v1/messages"),
        ("PUT", "/api/v1/messages"),
        ("PUT", "/api/v1/tags"),
        ("POST", "/api/v1/message/latest/release"),
        ("POST", "/api/v1/send"),
    ]:
        response = await call(relay.web_port, method, path, "bob", json={"IDs": []})
        assert response.status_code == 403, (method, path)
        assert response.text == "Forbidden: this needs the operator role.\n"


async def test_an_operator_gets_through_to_the_routes(relay: Relay) -> None:
    """Past authentication: the routes answer (an empty send request is the handler's 400)."""
    assert (await call(relay.web_port, "GET", "/api/v1/messages", "alice")).status_code == 200
    response = await call(relay.web_port, "DELETE", "/api/v1/messages", "alice")
    assert response.status_code == 200
    response = await call(relay.web_port, "POST", "/api/v1/send", "alice", json={})
    assert response.status_code == 400


async def test_probes_stay_open_and_the_metrics_port_is_untouched(relay: Relay) -> None:
    for path in ("/livez", "/readyz", "/healthz"):
        response = await call(relay.web_port, "GET", path)
        assert response.status_code == 200, path
        assert "date" in response.headers
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await call(relay.metrics_port, "GET", path)).status_code == 200, path


async def test_the_send_api_has_users_of_its_own(
    tmp_path: Path, ui_users: Path, send_users: Path
) -> None:
    """With MXRELAY_SEND_API_AUTH_FILE, only its users may send, and they may do nothing else
    (as Mailpit's send API auth): the UI's operators cannot send."""
    env = relay_env(
        tmp_path,
        MXRELAY_UI_AUTH_FILE=str(ui_users),
        MXRELAY_UI_OPERATORS="*",
        MXRELAY_SEND_API_AUTH_FILE=str(send_users),
    )
    async with running_relay(env) as relay:
        port = relay.web_port
        assert (await call(port, "POST", "/api/v1/send", "app", json={})).status_code == 400
        assert (await call(port, "POST", "/api/v1/send", "alice", json={})).status_code == 401
        assert (await call(port, "POST", "/api/v1/send", json={})).status_code == 401
        assert (await call(port, "GET", "/api/v1/messages", "app")).status_code == 401
        assert (await call(port, "DELETE", "/api/v1/messages", "app")).status_code == 401
        assert (await call(port, "DELETE", "/api/v1/messages", "bob")).status_code == 200


async def test_under_a_webroot_the_roles_are_those_of_the_routes_there(
    tmp_path: Path, ui_users: Path, send_users: Path
) -> None:
    """With MXRELAY_UI_WEBROOT, `/mail/api/v1/send` is the send route (its own users only, when
    there are any), releasing and every other action need an operator, and the probes are open."""
    env = relay_env(
        tmp_path,
        MXRELAY_UI_AUTH_FILE=str(ui_users),
        MXRELAY_UI_OPERATORS="alice",
        MXRELAY_UI_WEBROOT="/mail/",
    )
    async with running_relay(env) as relay:
        port = relay.web_port
        for path in ("/mail/api/v1/send", "/mail/api/v1/message/latest/release"):
            refused = await call(port, "POST", path, "bob", json={})
            assert (refused.status_code, refused.text) == (
                403,
                "Forbidden: this needs the operator role.\n",
            ), path
        assert (await call(port, "POST", "/mail/api/v1/send", "alice", json={})).status_code == 400
        released = await call(port, "POST", "/mail/api/v1/message/latest/release", "alice", json={})
        assert released.status_code == 404  # past the login: there is no message
        assert (await call(port, "DELETE", "/mail/api/v1/messages", "bob")).status_code == 403
        assert (await call(port, "DELETE", "/mail/api/v1/messages", "alice")).status_code == 200
        for probe in ("/livez", "/mail/livez", "/mail/readyz"):
            assert (await call(port, "GET", probe)).status_code == 200, probe
    env["MXRELAY_SEND_API_AUTH_FILE"] = str(send_users)
    async with running_relay(env) as relay:
        port = relay.web_port
        assert (await call(port, "POST", "/mail/api/v1/send", "app", json={})).status_code == 400
        assert (await call(port, "POST", "/mail/api/v1/send", "alice", json={})).status_code == 401
        assert (await call(port, "POST", "/mail/api/v1/send", "bob", json={})).status_code == 401
        assert (await call(port, "GET", "/mail/api/v1/messages", "app")).status_code == 401


async def test_without_a_ui_users_file_the_send_api_still_needs_its_users(
    tmp_path: Path, send_users: Path
) -> None:
    env = relay_env(tmp_path, MXRELAY_SEND_API_AUTH_FILE=str(send_users))
    async with running_relay(env) as relay:
        port = relay.web_port
        assert (await call(port, "GET", "/api/v1/messages")).status_code == 200
        assert (await call(port, "DELETE", "/api/v1/messages")).status_code == 200
        response = await call(port, "POST", "/api/v1/send", json={})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == CHALLENGE
        assert (await call(port, "POST", "/api/v1/send", "app", json={})).status_code == 400


async def test_a_client_that_keeps_failing_gets_429_but_a_recent_login_stays_in(
    tmp_path: Path, ui_users: Path
) -> None:
    env = relay_env(tmp_path, MXRELAY_UI_AUTH_FILE=str(ui_users), MXRELAY_UI_AUTH_FAILURE_LIMIT="3")
    async with running_relay(env) as relay:
        port = relay.web_port
        assert (await call(port, "GET", "/api/v1/info", "alice")).status_code == 200
        for _ in range(3):
            assert (await call(port, "GET", "/api/v1/info", "bob", "guess")).status_code == 401
        throttled = await call(port, "GET", "/api/v1/info", "bob")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "60"
        # bob's right password is not even checked; alice logged in a moment ago and stays in
        assert (await call(port, "GET", "/api/v1/info", "alice")).status_code == 200


async def test_concurrent_guesses_cannot_overdraw_the_budget(
    tmp_path: Path, ui_users: Path
) -> None:
    """Checks under way count as failures until they end: of twelve guesses sent at once, only
    the budget's three are checked."""
    slow = htpasswd_file(tmp_path / "slow-users", 9, alice=PASSWORDS["alice"])
    env = relay_env(tmp_path, MXRELAY_UI_AUTH_FILE=str(slow), MXRELAY_UI_AUTH_FAILURE_LIMIT="3")
    async with running_relay(env) as relay:
        guesses = [
            call(relay.web_port, "GET", "/api/v1/info", "alice", f"guess {n}") for n in range(12)
        ]
        statuses = sorted(response.status_code for response in await asyncio.gather(*guesses))
    assert statuses == [401] * 3 + [429] * 9


async def test_no_password_or_hash_reaches_the_log_but_the_user_name_does(
    tmp_path: Path, ui_users: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hashes = hashes_in(ui_users)
    env = relay_env(tmp_path, MXRELAY_UI_AUTH_FILE=str(ui_users))
    caplog.set_level(logging.DEBUG)
    async with running_relay(env) as relay:
        port = relay.web_port
        await call(port, "GET", "/api/v1/info", "alice", "hunter2-guess")
        await call(port, "DELETE", "/api/v1/messages", "bob")
        await call(port, "DELETE", "/api/v1/messages", "alice")
    header = base64.b64encode(b"alice:hunter2-guess").decode()
    lines = [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    text = "\n".join(lines)
    for secret in ("hunter2-guess", header, PASSWORDS["alice"], PASSWORDS["bob"], *hashes):
        assert secret not in text
    assert any("web.login_failed" in line and "alice" in line for line in lines)
    assert any("web.forbidden" in line and "'bob'" in line for line in lines)
    assert any("web.audit" in line and "'bob'" in line for line in lines)


async def test_an_unusable_users_file_stops_the_start_naming_the_variable(tmp_path: Path) -> None:
    broken = tmp_path / "users"
    secret_hash = htpasswd_line("alice", "pw", 4).split(":", 1)[1]
    broken.write_text(f"alice:{secret_hash}\nbob:not-a-hash-{secret_hash[:20]}\n")
    cases = [
        ({"MXRELAY_UI_AUTH_FILE": str(tmp_path / "missing")}, "No such file"),
        ({"MXRELAY_UI_AUTH_FILE": str(broken)}, "line 2 is not user:bcrypt-hash"),
        ({"MXRELAY_SEND_API_AUTH_FILE": str(broken)}, "MXRELAY_SEND_API_AUTH_FILE"),
        (
            {"MXRELAY_UI_AUTH_FILE": str(htpasswd_file(tmp_path / "ok", 4, alice="pw")),
             "MXRELAY_UI_OPERATORS": "alice,carol"},
            "MXRELAY_UI_OPERATORS: names carol, not in MXRELAY_UI_AUTH_FILE",
        ),
    ]  # fmt: skip
    for env, reason in cases:
        with pytest.raises(StartupError) as raised:
            async with running_relay(relay_env(tmp_path, **env)):
                pass
        message = str(raised.value)
        assert reason in message
        assert secret_hash[:20] not in message


# -- the middleware alone -----------------------------------------------------------------------


async def ok(scope: Mapping[str, object], receive: object, send: object) -> None:
    principal = principal_of(scope)
    assert principal is not None
    body = f"{principal.actor} {principal.role}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def users_of(path: Path, pool: CheckPool, **web: object) -> WebUsers:
    return WebUsers.load(WebSettings(ui_auth_file=path, **web), pool=pool)  # type: ignore[arg-type]


async def test_a_full_check_pool_answers_503_at_once(ui_users: Path) -> None:
    """Past the backlog of waiting bcrypt checks a login is not queued: 503, retry in a second."""
    pool = CheckPool(backlog=0)
    app = BasicAuth(ok, users_of(ui_users, pool), failure_limit=10)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get("/api/v1/info", auth=as_user("alice"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_verified_credentials_skip_bcrypt_for_a_while(ui_users: Path) -> None:
    """A repeat of good credentials within the cache's lifetime needs no check at all: the same
    request passes with the pool closed to every check."""
    pool = CheckPool()
    app = BasicAuth(ok, users_of(ui_users, pool, ui_operators="alice"), failure_limit=10)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        first = await client.get("/api/v1/info", auth=as_user("alice"))
        pool.backlog = 0
        again = await client.get("/api/v1/info", auth=as_user("alice"))
        other = await client.get("/api/v1/info", auth=as_user("bob"))
        wrong = await client.get("/api/v1/info", auth=as_user("alice", "wrong"))
    pool.close()
    assert (first.status_code, first.text) == (200, "alice operator")
    assert (again.status_code, again.text) == (200, "alice operator")
    assert other.status_code == wrong.status_code == 503  # both would need a check


async def test_a_websocket_handshake_without_credentials_is_refused(ui_users: Path) -> None:
    """With the server's denial extension, the 401 itself; without, closed before accepting."""
    pool = CheckPool()
    app = BasicAuth(ok, users_of(ui_users, pool), failure_limit=10)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    cases: list[tuple[dict[str, object], str]] = [
        ({"websocket.http.response": {}}, "websocket.http.response.start"),
        ({}, "websocket.close"),
    ]
    for extensions, first in cases:
        sent.clear()
        scope = {"type": "websocket", "path": "/api/events", "headers": [], "client": ("::1", 1)}
        await app({**scope, "extensions": extensions}, receive, send)
        assert sent[0]["type"] == first
        if first == "websocket.http.response.start":
            assert sent[0]["status"] == 401
    pool.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "Basic " + base64.b64encode(b"alice:pw:with:colons").decode(),
            ("alice", "pw:with:colons"),
        ),
        ("basic " + base64.b64encode(b"alice:").decode(), ("alice", "")),
        ("Basic " + base64.b64encode(b":pw").decode(), ("", "pw")),
        ("Basic " + base64.b64encode("zoë:pässword".encode()).decode(), ("zoë", "pässword")),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Basic not base64!", None),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic " + "A" * 5000, None),
        (None, None),
    ],
)
def test_basic_credentials(header: str | None, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


async def test_latin1_password_bytes_are_checked_as_sent(tmp_path: Path) -> None:
    """A client sending a password in Latin-1 (not UTF-8) is checked on those very bytes, as
    they were hashed, not on a re-encoding of them."""
    path = tmp_path / "users"
    hashed = bcrypt.hashpw("pässword".encode("latin-1"), bcrypt.gensalt(4)).decode()
    path.write_text(f"zoe:{hashed}\n")
    table = UserTable.load(path)
    credentials = basic_credentials(
        "Basic " + base64.b64encode("zoe:pässword".encode("latin-1")).decode()
    )
    assert credentials is not None
    assert await table.verify(*credentials)
    assert not await table.verify("zoe", "pässword")  # the UTF-8 spelling is other bytes
    table.close()


async def test_the_console_offers_actions_to_operators_only(relay: Relay) -> None:
    """The console asks the login which role a request has (roles.acts): an operator's page has
    the action buttons, a viewer's has none (the API refuses a viewer's action anyway)."""
    operator = await call(relay.web_port, "GET", "/", "alice")
    viewer = await call(relay.web_port, "GET", "/", "bob")
    assert operator.status_code == viewer.status_code == 200
    assert "data-action=" in operator.text
    assert "data-action=" not in viewer.text
