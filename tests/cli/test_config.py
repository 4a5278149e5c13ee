"""`mxrelay config` and start-up configuration errors, through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_check import mxrelay


def test_config_prints_every_setting_with_secrets_redacted(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    result = mxrelay(
        ["config"],
        {
            "MXRELAY_GRAPH_CLIENT_SECRET_FILE": str(secret_file),
            "MXRELAY_UPSTREAM_PASSWORD": "hunter2",
            "MXRELAY_DATABASE_URL": "postgresql://relay:dbpass@db.example.net/mxrelay",
            "LISTEN_ADDR": ":25",
            "UPSTREAM_HOST": "127.0.0.1",
            "UPSTREAM_PORT": "1025",
        },
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert lines["MXRELAY_GRAPH_CLIENT_SECRET"] == "********"
    assert lines["MXRELAY_UPSTREAM_PASSWORD"] == "********"
    assert lines["MXRELAY_DATABASE_URL"] == "postgresql://relay:********@db.example.net/mxrelay"
    assert lines["MXRELAY_SMTP_LISTEN"] == "0.0.0.0:25"
    assert lines["MXRELAY_UPSTREAM"] == "smtp://127.0.0.1:1025"
    assert lines["MXRELAY_DELIVERY"] == "passthrough"
    for secret in ("from-a-file", "hunter2", "dbpass"):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MXRELAY_RETRY_MAX": "5x"},
            "MXRELAY_RETRY_MAX: '5x' is not a duration; expected a duration from 100ms to 7d",
        ),
        ({"MXRELAY_SMTP_RECIPIENT_LIMIT": "0"}, "MXRELAY_SMTP_RECIPIENT_LIMIT: '0' is not valid"),
        ({"LISTEN_ADDR": "nonsense:port"}, "LISTEN_ADDR: 'nonsense:port' has no valid port"),
        ({"UPSTREAM_HOST": "mailpit", "UPSTREAM_PORT": "x"}, "UPSTREAM_PORT: 'x' is not a port"),
        (
            {"MXRELAY_DELIVERY": "smtp"},
            "MXRELAY_UPSTREAM: missing, but MXRELAY_DELIVERY=smtp needs it",
        ),
        (
            {"MXRELAY_ALLOWED_CLIENTS": "10.0.0.0/8,banana"},
            "MXRELAY_ALLOWED_CLIENTS: '10.0.0.0/8,banana' has 'banana'",
        ),
    ],
)
def test_bad_values_stop_start_up_with_status_2_and_one_line(
    env: dict[str, str], message: str
) -> None:
    result = mxrelay(["serve"], env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mxrelay: configuration error: " + message), lines[0]


def test_a_malformed_secret_is_not_echoed(tmp_path: Path) -> None:
    result = mxrelay(
        ["config"],
        {"MXRELAY_UPSTREAM_PASSWORD": "p", "MXRELAY_UPSTREAM_PASSWORD_FILE": str(tmp_path / "x")},
    )
    assert result.returncode == 2
    assert "MXRELAY_UPSTREAM_PASSWORD" in result.stderr


def test_help_lists_every_command() -> None:
    result = mxrelay(["--help"], {})
    assert result.returncode == 0
    for command in ("serve", "config", "check"):
        assert command in result.stdout
