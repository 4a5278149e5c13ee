"""Secure by default, with `mxrelay serve` as a real process: the web UI and API off loopback
without users is a configuration error (exit 2, one line, nothing listening), `mxrelay config`
says the same, an unusable users file stops the start (exit 1), and with users the relay serves
every interface behind a login."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

from tests.support.htpasswd import htpasswd_file
from tests.support.processes import ServeProcess, free_port, run_mxrelay, wait_for_port


def base_env(tmp_path: Path, http_port: int) -> dict[str, str]:
    """The web UI on every interface; `ServeProcess` adds the other listeners (loopback)."""
    return {
        "MXRELAY_HTTP_LISTEN": f"0.0.0.0:{http_port}",
        "MXRELAY_HOSTNAME": "relay.example.net",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
    }


def listeners() -> dict[str, str]:
    return {
        "MXRELAY_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "MXRELAY_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }


def nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_listening_off_loopback_without_users_is_a_configuration_error(tmp_path: Path) -> None:
    port = free_port()
    env = {**base_env(tmp_path, port), **listeners()}
    expected = (
        f"mxrelay: configuration error: MXRELAY_HTTP_LISTEN: '0.0.0.0:{port}' is not a loopback "
        "address, and the web UI and API have no users; expected MXRELAY_UI_AUTH_FILE, "
        "MXRELAY_UI_AUTH=none behind an authenticating proxy, or a loopback address\n"
    )
    for command in ("serve", "config"):
        result = run_mxrelay(command, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr == expected
    assert nothing_listens(port)
    assert not (tmp_path / "log.db").exists()


def test_an_unusable_users_file_stops_the_start(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **base_env(tmp_path, port),
        **listeners(),
        "MXRELAY_UI_AUTH_FILE": str(tmp_path / "missing"),
    }
    result = run_mxrelay("serve", env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"mxrelay: cannot start: MXRELAY_UI_AUTH_FILE: {tmp_path / 'missing'} cannot be used: "
        "No such file or directory"
    )
    assert nothing_listens(port)


def get(port: int, path: str, credentials: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials is not None:
        request.add_header("Authorization", "Basic " + b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_with_users_the_ui_serves_every_interface_behind_a_login(tmp_path: Path) -> None:
    port = free_port()
    users = htpasswd_file(tmp_path / "users", 5, alice="s3cret")
    env = {**base_env(tmp_path, port), "MXRELAY_UI_AUTH_FILE": str(users)}
    assert run_mxrelay("config", env=env).returncode == 0
    serve = ServeProcess(env, tmp_path / "relay.log")
    try:
        wait_for_port(port, process=serve.process)
        assert get(port, "/api/v1/messages") == 401
        assert get(port, "/api/v1/messages", "alice:wrong") == 401
        assert get(port, "/api/v1/messages", "alice:s3cret") == 200
        assert get(port, "/readyz") == 200
        assert serve.terminate() == 0
    finally:
        serve.close()
    log = (tmp_path / "relay.log").read_text()
    assert "s3cret" not in log
    assert users.read_text().split(":", 1)[1].strip() not in log


def test_an_authenticating_proxy_stated_lets_it_listen_without_users(tmp_path: Path) -> None:
    port = free_port()
    env = {**base_env(tmp_path, port), "MXRELAY_UI_AUTH": "none"}
    config = run_mxrelay("config", env=env)
    assert config.returncode == 0, config.stderr
    assert "MXRELAY_UI_AUTH=none\n" in config.stdout
    serve = ServeProcess(env, tmp_path / "relay.log")
    try:
        wait_for_port(port, process=serve.process)
        assert get(port, "/api/v1/messages") == 200
        assert serve.terminate() == 0
    finally:
        serve.close()
