"""`mxrelay graph-test` against the stand-in: each step's result in words, and the exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxrelay.cli import main
from tests.support.connect_proxy import ConnectProxy
from tests.support.graph_standin import MAILBOX, SECRET, GraphStandIn

TO = "alice@example.net"


def graph_test(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    status = main(["graph-test", "--to", TO, *extra], environ)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_accepted_with_the_request_id(
    standin: GraphStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = graph_test(standin.environ(MXRELAY_GRAPH_MAILBOX=MAILBOX), capsys)
    assert status == 0
    [sent] = standin.sent()
    assert sent.recipients == (TO,)
    assert sent.mailbox == MAILBOX
    assert b"Subject: mxrelay graph-test" in sent.mime
    lines = out.splitlines()
    assert "credential: client secret" in lines
    assert any(line.startswith("token: ok") for line in lines)
    assert "permissions: Mail.Send granted" in lines
    assert f"sending mailbox: {MAILBOX}" in lines
    assert f"request-id {sent.request_id}" in lines[-1]
    assert lines[-1].startswith("send: accepted by Microsoft Graph (HTTP 202")
    assert SECRET not in out


def test_certificate_credential_is_described(
    standin: GraphStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = standin.issue_certificate()
    environ = standin.environ(
        MXRELAY_GRAPH_CLIENT_SECRET="", MXRELAY_GRAPH_CERTIFICATE_FILE=str(path)
    )
    status, out, _ = graph_test(environ, capsys, "--from", MAILBOX)
    assert status == 0
    assert "credential: certificate, SHA-1 thumbprint " in out
    assert "PRIVATE KEY" not in out


def test_wrong_secret_fails_at_the_token_step(
    standin: GraphStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "Not-The~Secret.42"
    environ = standin.environ(MXRELAY_GRAPH_CLIENT_SECRET=wrong, MXRELAY_GRAPH_MAILBOX=MAILBOX)
    status, out, _ = graph_test(environ, capsys)
    assert status == 1
    assert "token: FAILED: the identity platform refused the token request (AADSTS7000215" in out
    assert wrong not in out
    assert standin.send_requests() == []


def test_permission_missing(standin: GraphStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    standin.app.roles = ()
    status, out, _ = graph_test(standin.environ(MXRELAY_GRAPH_MAILBOX=MAILBOX), capsys)
    assert status == 1
    assert "permissions: permission missing: the token carries no Mail.Send" in out
    assert standin.send_requests() == []


def test_mailbox_outside_scope(standin: GraphStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    standin.add_mailbox("ceo@contoso.example", in_scope=False)
    status, out, _ = graph_test(standin.environ(), capsys, "--from", "ceo@contoso.example")
    assert status == 1
    last = out.splitlines()[-1]
    assert last.startswith("send: mailbox outside scope: the app holds Mail.Send")
    assert "ErrorAccessDenied" in last
    assert "request-id " in last


def test_unknown_mailbox(standin: GraphStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = graph_test(standin.environ(), capsys, "--from", "nobody@contoso.example")
    assert status == 1
    assert out.splitlines()[-1].startswith("send: mailbox not found: nobody@contoso.example")


def test_configuration_problems_exit_2(
    standin: GraphStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = graph_test(standin.environ(), capsys)
    assert status == 2
    assert "no sending mailbox: pass --from MAILBOX or set MXRELAY_GRAPH_MAILBOX" in err
    status, _, err = graph_test(standin.environ(MXRELAY_GRAPH_TENANT_ID=""), capsys)
    assert status == 2
    assert "MXRELAY_GRAPH_TENANT_ID: missing" in err
    environ = standin.environ(MXRELAY_GRAPH_MAILBOX=MAILBOX, ALL_PROXY="socks5://u:pw@127.0.0.1:1")
    status, _, err = graph_test(environ, capsys)
    assert status == 2
    assert "ALL_PROXY: socks5:// proxies are not supported" in err
    assert "pw" not in err
    assert standin.token_requests() == []


@pytest.mark.slow
def test_each_host_is_reached_as_the_proxy_variables_say(
    standin: GraphStandIn, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The identity platform (as `localhost`) through an authenticating CONNECT proxy, Graph
    (`127.0.0.1`) direct by NO_PROXY: both printed, the proxy's password never."""
    with ConnectProxy.running(tmp_path / "proxy", credentials="relay:pr0xy-pw") as proxy:
        environ = standin.environ(
            MXRELAY_GRAPH_MAILBOX=MAILBOX,
            MXRELAY_GRAPH_AUTHORITY=standin.identity_at("localhost"),
            HTTPS_PROXY=proxy.url,
            NO_PROXY="127.0.0.1",
        )
        status, out, err = graph_test(environ, capsys)
        tunnels = proxy.tunnels()
    assert status == 0, out + err
    lines = out.splitlines()
    shown = f"http://127.0.0.1:{proxy.port} (credentials not shown)"
    assert f"identity platform route: through {shown} (HTTPS_PROXY)" in lines
    assert "graph route: direct (NO_PROXY has '127.0.0.1')" in lines
    assert lines[-1].startswith("send: accepted by Microsoft Graph (HTTP 202")
    assert tunnels == [f"localhost:{standin.port}"]  # MSAL's requests, with the credentials
    assert "pr0xy-pw" not in out + err
