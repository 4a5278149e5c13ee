"""The role each request needs, by method and path: reading needs a viewer, anything else an
operator, `POST /api/v1/send` a sender; only probes and preflights are open. Routes that do not
exist yet are covered by their method. Under a webroot, the same rule on the path without it."""

from __future__ import annotations

import pytest

from mxrelay.web.roles import Principal, Role, required_role

VIEWER, OPERATOR, SENDER = Role.VIEWER, Role.OPERATOR, Role.SENDER

TABLE = [
    # probes and preflights
    ("GET", "/livez", None),
    ("GET", "/readyz", None),
    ("HEAD", "/readyz", None),
    ("GET", "/healthz", None),
    ("OPTIONS", "/api/v1/messages", None),
    ("options", "/api/v1/message/abc/release", None),
    # reads, Mailpit's and mxrelay's own
    ("GET", "/", VIEWER),
    ("GET", "/message/01ABC", VIEWER),
    ("GET", "/api/v1/messages", VIEWER),
    ("HEAD", "/api/v1/messages", VIEWER),
    ("GET", "/api/v1/search", VIEWER),
    ("GET", "/api/v1/message/latest", VIEWER),  # marks read, as on Mailpit: a viewer's right
    ("GET", "/api/v1/message/01ABC/raw", VIEWER),
    ("GET", "/api/v1/message/01ABC/part/1.2/thumb", VIEWER),
    ("GET", "/api/v1/info", VIEWER),
    ("GET", "/api/v1/webui", VIEWER),
    ("GET", "/api/v1/tags", VIEWER),
    ("GET", "/api/v1/swagger.json", VIEWER),
    ("GET", "/api/v1/mxrelay/audit", VIEWER),
    ("GET", "/api/events", VIEWER),  # the websocket
    ("GET", "/view/01ABC.html", VIEWER),
    ("GET", "/api/v1/send", VIEWER),  # not a send: reading, for what it is worth
    # state-changing, Mailpit's
    ("PUT", "/api/v1/messages", OPERATOR),
    ("DELETE", "/api/v1/messages", OPERATOR),
    ("DELETE", "/api/v1/search", OPERATOR),
    ("POST", "/api/v1/message/01ABC/release", OPERATOR),
    ("PUT", "/api/v1/tags", OPERATOR),
    ("PUT", "/api/v1/tags/urgent", OPERATOR),
    ("DELETE", "/api/v1/tags/urgent", OPERATOR),
    ("PUT", "/api/v1/chaos", OPERATOR),
    # state-changing, mxrelay's own and routes to come: by method alone
    ("POST", "/api/v1/message/01ABC/retry", OPERATOR),
    ("POST", "/api/v1/message/01ABC/hold", OPERATOR),
    ("PATCH", "/api/v1/anything-new", OPERATOR),
    ("POST", "/api/v1/queue/purge", OPERATOR),
    ("TRACE", "/", OPERATOR),
    # what the probes and the send route are only at their exact spelling
    ("POST", "/livez", OPERATOR),
    ("GET", "//livez", VIEWER),
    ("GET", "/livez/", VIEWER),
    ("POST", "/api/v1/send", SENDER),
    ("post", "/api/v1/send", SENDER),
    ("POST", "//api/v1/send", OPERATOR),
    ("POST", "/api/v1/send/", OPERATOR),
    ("PUT", "/api/v1/send", OPERATOR),
]


@pytest.mark.parametrize(("method", "path", "role"), TABLE)
def test_the_role_a_request_needs(method: str, path: str, role: Role | None) -> None:
    assert required_role(method, path) is role


@pytest.mark.parametrize(("method", "path", "role"), TABLE)
def test_under_a_webroot_the_rule_reads_the_path_without_it(
    method: str, path: str, role: Role | None
) -> None:
    assert required_role(method, "/mail" + path, "/mail/") is role


WEBROOT_TABLE = [
    ("GET", "/livez", None),  # the probes answer at the root too
    ("GET", "/mail/readyz", None),
    ("GET", "/mail", VIEWER),
    ("POST", "/api/v1/send", OPERATOR),  # outside the prefix: routed nowhere, no sender's route
    ("POST", "/mailapi/v1/send", OPERATOR),
    ("POST", "/mail/mail/api/v1/send", OPERATOR),
    ("POST", "/mail/api/v1/message/01ABC/release", OPERATOR),
    ("POST", "/a/b/api/v1/send", SENDER),
]


@pytest.mark.parametrize(("method", "path", "role"), WEBROOT_TABLE)
def test_paths_beside_a_webroot(method: str, path: str, role: Role | None) -> None:
    webroot = "/a/b/" if path.startswith("/a/") else "/mail/"
    assert required_role(method, path, webroot) is role


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (OPERATOR, VIEWER, True),
        (OPERATOR, OPERATOR, True),
        (OPERATOR, SENDER, False),
        (VIEWER, VIEWER, True),
        (VIEWER, OPERATOR, False),
        (VIEWER, SENDER, False),
        (SENDER, SENDER, True),
        (SENDER, VIEWER, False),
        (SENDER, OPERATOR, False),
    ],
)
def test_what_each_role_allows(held: Role, needed: Role, allowed: bool) -> None:
    assert held.allows(needed) is allowed


def test_the_actor_is_the_user_or_anonymous() -> None:
    assert Principal("alice", OPERATOR, "192.0.2.1").actor == "alice"
    assert Principal(None, OPERATOR, "192.0.2.1").actor == "anonymous"
