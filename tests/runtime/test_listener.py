"""The SMTP listener as the runtime builds it: the plan's size limit and sender rules in its
policy, and a certificate or users file that cannot be read stops the start with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxrelay.config import load_settings
from mxrelay.metrics import Metrics
from mxrelay.model import Peer, SessionInfo
from mxrelay.runtime.listener import load_users, relay_policy, smtp_server, tls_context
from mxrelay.runtime.plan import StartupError, plan_stages
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.smtp.replies import SENDER_NOT_ALLOWED
from mxrelay.smtp.server import SmtpServer
from tests.support.smtp_relay import RecordingSink, ScriptedCheck

GRAPH = {
    "MXRELAY_DELIVERY": "graph",
    "MXRELAY_GRAPH_TENANT_ID": "tenant",
    "MXRELAY_GRAPH_CLIENT_ID": "client",
    "MXRELAY_GRAPH_CLIENT_SECRET": "secret",
    "MXRELAY_GRAPH_MAX_MESSAGE_SIZE": "64KiB",
    "MXRELAY_GRAPH_ALLOWED_SENDERS": "app@contoso.example",
}
SESSION = SessionInfo(Peer("127.0.0.1", 40000), helo="app.example.net", esmtp=True)


def server_for(environ: dict[str, str]) -> SmtpServer:
    settings = load_settings(environ, hostname=lambda: "relay.example.net")
    plan = plan_stages(settings)
    metrics = Metrics()
    policy = relay_policy(
        settings,
        plan,
        check=ScriptedCheck(),
        sink=RecordingSink(),
        users=None,
        metrics=metrics,
        clock=lambda: 0.0,
    )
    return smtp_server(
        settings, plan, policy=policy, users=None, metrics=metrics, clock=lambda: 0.0
    )


def test_graph_mode_hands_the_listener_its_size_and_sender_rules() -> None:
    server = server_for(GRAPH)
    assert server.limits.max_message_size == 64 * 1024
    policy = server.policy
    assert isinstance(policy, RelayPolicy)
    assert policy.sender_check is not None
    assert policy.message_check is not None
    assert policy.sender_check("ceo@elsewhere.example", SESSION) is SENDER_NOT_ALLOWED
    assert policy.sender_check("app@contoso.example", SESSION) is None


def test_other_modes_have_no_sender_rules() -> None:
    server = server_for(
        {"MXRELAY_DELIVERY": "hold", "MXRELAY_GRAPH_ALLOWED_SENDERS": "a@b.example"}
    )
    policy = server.policy
    assert isinstance(policy, RelayPolicy)
    assert (policy.sender_check, policy.message_check) == (None, None)
    assert server.limits.max_message_size == 25 * 1024 * 1024
    assert server.tls_context is None


def test_a_certificate_that_cannot_be_loaded_stops_the_start(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    settings = load_settings(
        {"MXRELAY_SMTP_TLS_CERT_FILE": str(cert), "MXRELAY_SMTP_TLS_KEY_FILE": str(cert)},
        hostname=lambda: "relay.example.net",
    )
    with pytest.raises(StartupError, match="MXRELAY_SMTP_TLS_CERT_FILE/KEY_FILE cannot be loaded"):
        tls_context(settings)


def test_a_users_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "users"
    settings = load_settings(
        {"MXRELAY_SMTP_AUTH_USERS_FILE": str(missing)}, hostname=lambda: "relay.example.net"
    )
    with pytest.raises(StartupError, match=f"MXRELAY_SMTP_AUTH_USERS_FILE: {missing} cannot be"):
        load_users(settings)
    assert load_users(load_settings({}, hostname=lambda: "relay.example.net")) is None
