"""`mxrelay config` and start-up configuration errors, through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_check import mxrelay

pytestmark = pytest.mark.slow  # each test runs mxrelay in a process of its own


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
    assert "\n#" not in "\n" + result.stdout  # no proxy variable, not Graph mode: no routes
    assert lines["MXRELAY_GRAPH_CLIENT_SECRET"] == "********"
    assert lines["MXRELAY_UPSTREAM_PASSWORD"] == "********"
    assert lines["MXRELAY_DATABASE_URL"] == "postgresql://relay:********@db.example.net/mxrelay"
    assert lines["MXRELAY_SMTP_LISTEN"] == "0.0.0.0:25"
    assert lines["MXRELAY_UPSTREAM"] == "smtp://127.0.0.1:1025"
    assert lines["MXRELAY_DELIVERY"] == "passthrough"
    for secret in ("from-a-file", "hunter2", "dbpass"):
        assert secret not in result.stdout + result.stderr


GRAPH = {
    "MXRELAY_DELIVERY": "graph",
    "MXRELAY_GRAPH_TENANT_ID": "contoso.example",
    "MXRELAY_GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "MXRELAY_GRAPH_CLIENT_SECRET": "client-s3cret",
}


def test_config_shows_which_proxy_each_graph_host_is_reached_through() -> None:
    result = mxrelay(
        ["config"],
        {
            **GRAPH,
            "HTTPS_PROXY": "http://relay:pr0xy%2Fpw@proxy.example.net:3128",
            "NO_PROXY": ".microsoft.com,10.0.0.0/8",
        },
    )
    assert result.returncode == 0, result.stderr
    comments = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    shown = "http://proxy.example.net:3128 (credentials not shown)"
    assert comments == [
        f"# outbound HTTPS: HTTPS_PROXY={shown}, NO_PROXY=.microsoft.com,10.0.0.0/8",
        f"# identity platform login.microsoftonline.com:443: through {shown} (HTTPS_PROXY)",
        "# graph graph.microsoft.com:443: direct (NO_PROXY has '.microsoft.com')",
    ]
    assert "pr0xy" not in result.stdout + result.stderr
    assert "client-s3cret" not in result.stdout + result.stderr


def test_config_refuses_a_proxy_graph_mode_cannot_use() -> None:
    result = mxrelay(["config"], {**GRAPH, "ALL_PROXY": "socks5h://u:pr0xy@127.0.0.1:1080"})
    assert result.returncode == 2
    assert result.stderr.startswith(
        "mxrelay: configuration error: ALL_PROXY: socks5h:// proxies are not supported"
    )
    assert "pr0xy" not in result.stderr
    other = mxrelay(["config"], {"ALL_PROXY": "socks5h://127.0.0.1:1080"})  # passthrough mode
    assert other.returncode == 0
    assert "# outbound HTTPS: ALL_PROXY: socks5h:// proxies are not supported" in other.stdout


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
        (
            {"MXRELAY_DATABASE_URL": "data/mxrelay.db"},
            "MXRELAY_DATABASE_URL: '********' is not a database URL; expected sqlite:///path",
        ),
        (
            {"MXRELAY_DATABASE_URL": "mysql://relay:s3cret@db/mx"},
            "MXRELAY_DATABASE_URL: 'mysql://relay:********@db/mx' names a database this relay "
            "does not support (mysql)",
        ),
        (
            {"MXRELAY_DATABASE_URL": "sqlite://"},
            "MXRELAY_DATABASE_URL: 'sqlite://' names no SQLite file",
        ),
        (
            {"MXRELAY_DATABASE_URL": "postgresql://relay:s3/cret@db:port/mx"},
            "MXRELAY_DATABASE_URL: 'postgresql://********' is not a database URL",
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


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://relay:G3n/er:t?d%40x@db.example.net:5432/mxrelay",
            "postgresql://relay:********@db.example.net:5432/mxrelay",
        ),
        (
            "postgresql://relay@db.example.net/mxrelay?password=G3n/er@ted&sslmode=require",
            "postgresql://relay@db.example.net/mxrelay?password=********&sslmode=require",
        ),
        ("sqlite:///./data/mxrelay.db", "sqlite:///./data/mxrelay.db"),
    ],
)
def test_database_passwords_are_hidden_wherever_they_are(url: str, shown: str) -> None:
    """Generated passwords hold `/`, `:` or `?` (and `@` encoded); libpq and asyncpg also take `?password=`."""
    result = mxrelay(["config"], {"MXRELAY_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert lines["MXRELAY_DATABASE_URL"] == shown
    assert "G3n" not in result.stdout + result.stderr


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
