"""STARTTLS and AUTH PLAIN/LOGIN with real clients and a throw-away CA."""

from __future__ import annotations

import base64
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
import trustme

from mxrelay.passwords import UserTable
from tests.support.passwords import hash_password
from tests.support.smtp_relay import RecordingSink, RelayFactory, RelayThread, Wire, smtp_settings


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module")
def users() -> UserTable:
    return UserTable({"app": hash_password("s3cret pass", rounds=4).encode()})


@pytest.fixture
def tls_relay(
    make_relay: RelayFactory, server_context: ssl.SSLContext, users: UserTable
) -> RelayThread:
    return make_relay(tls_context=server_context, users=users, sink=RecordingSink())


def test_starttls_then_auth_plain(tls_relay: RelayThread, client_context: ssl.SSLContext) -> None:
    with smtplib.SMTP(tls_relay.host, tls_relay.port, timeout=10) as client:
        client.ehlo("c.example")
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features  # not before TLS
        assert client.starttls(context=client_context)[0] == 220
        client.ehlo("c.example")
        assert "starttls" not in client.esmtp_features
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        client.login("app", "s3cret pass")
        client.sendmail("a@example.org", ["b@example.net"], b"Subject: t\r\n\r\nx\r\n")
    assert isinstance(tls_relay.sink, RecordingSink)
    session = tls_relay.sink.transactions[0].session
    assert session.tls is not None
    assert session.tls.version.startswith("TLS")
    assert session.username == "app"


def test_auth_login_and_wrong_password(
    tls_relay: RelayThread, client_context: ssl.SSLContext
) -> None:
    with smtplib.SMTP(tls_relay.host, tls_relay.port, timeout=10) as client:
        client.ehlo("c.example")
        client.starttls(context=client_context)
        client.ehlo("c.example")
        code, text = client.docmd("AUTH", "LOGIN " + base64.b64encode(b"app").decode())
        assert code == 334
        code, text = client.docmd(base64.b64encode(b"wrong").decode())
        assert (code, text) == (535, b"5.7.8 Error: authentication failed")
        client.user, client.password = "app", "s3cret pass"
        assert client.auth("LOGIN", client.auth_login)[0] == 235


def test_auth_is_refused_without_tls(tls_relay: RelayThread) -> None:
    wire = Wire(tls_relay)
    try:
        wire.read()
        wire.command("EHLO c.example")
        token = base64.b64encode(b"\0app\0s3cret pass").decode()
        assert wire.command(f"AUTH PLAIN {token}") == (
            "538 5.7.11 Encryption required for requested authentication mechanism"
        )
    finally:
        wire.close()


def test_auth_over_plaintext_when_explicitly_allowed(
    make_relay: RelayFactory, users: UserTable
) -> None:
    relay = make_relay(
        users=users, settings=smtp_settings(auth_allow_plaintext=True, auth_required=True)
    )
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
        client.ehlo("c.example")
        assert client.mail("a@example.org") == (530, b"5.7.0 Authentication required")
        client.login("app", "s3cret pass")
        assert client.mail("a@example.org")[0] == 250


def test_starttls_forgets_an_auth_done_before_it(
    make_relay: RelayFactory, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """RFC 3207 4.2: what the plaintext session established is discarded, the identity too.
    (Whoever could write to the plaintext stream chose the TLS session's user, and the client's
    own AUTH after TLS was refused 503.) The EHLO the client must send again is no junk."""
    users = UserTable(
        {
            "mitm": hash_password("x", rounds=4).encode(),
            "app": hash_password("s3cret pass", rounds=4).encode(),
        }
    )
    sink = RecordingSink()
    relay = make_relay(
        tls_context=server_context,
        users=users,
        sink=sink,
        settings=smtp_settings(auth_allow_plaintext=True, junk_command_limit=0, error_limit=1),
    )
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
        client.ehlo("c.example")
        token = base64.b64encode(b"\0mitm\0x").decode()
        assert client.docmd("AUTH", "PLAIN " + token)[0] == 235  # injected in plaintext
        assert client.starttls(context=client_context)[0] == 220
        client.ehlo("c.example")
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        client.login("app", "s3cret pass")
        client.sendmail("a@example.org", ["b@example.net"], b"Subject: t\r\n\r\nx\r\n")
    [transaction] = sink.transactions
    assert transaction.session.username == "app"


def test_starttls_discards_pipelined_plaintext(
    tls_relay: RelayThread, client_context: ssl.SSLContext
) -> None:
    """CVE-2011-0411: commands sent with STARTTLS in one packet must not run after the handshake."""
    wire = Wire(tls_relay)
    try:
        wire.read()
        wire.command("EHLO c.example")
        wire.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        assert wire.read().startswith("220 2.0.0")
        tls = client_context.wrap_socket(wire.sock, server_hostname="127.0.0.1")
        tls.settimeout(10)
        reader = tls.makefile("rb")
        tls.sendall(b"EHLO c.example\r\n")
        lines = []
        while not (line := reader.readline()).startswith(b"250 "):
            lines.append(line)
        tls.sendall(b"RCPT TO:<b@example.net>\r\n")
        assert reader.readline().startswith(b"503 5.5.1 Error: need MAIL command")
        tls.close()
    finally:
        wire.close()


def test_swaks_with_starttls_and_auth(
    tls_relay: RelayThread, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    result = subprocess.run(
        [
            "swaks",
            "--server",
            f"{tls_relay.host}:{tls_relay.port}",
            "--tls",
            "--tls-verify",
            "--tls-ca-path",
            str(ca_file),
            "--tls-sni",
            "127.0.0.1",
            "--auth",
            "PLAIN",
            "--auth-user",
            "app",
            "--auth-password",
            "s3cret pass",
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
            "--helo",
            "c.example",
            "--body",
            "sent by swaks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert isinstance(tls_relay.sink, RecordingSink)
    assert b"sent by swaks" in tls_relay.sink.transactions[0].data
