"""The web's login settings: secure by default (no listening off loopback without users, unless
an authenticating proxy is stated), the rules between them, and the CORS origins as a browser
spells them. Each refusal is one line naming the variable."""

from __future__ import annotations

import pytest

from mxrelay.config import ConfigError, load_settings

USERS = {"MXRELAY_UI_AUTH_FILE": "/run/secrets/ui/users"}
PROXY = {"MXRELAY_UI_AUTH": "none"}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"MXRELAY_HTTP_LISTEN": "127.0.0.1:8025"},
        {"MXRELAY_HTTP_LISTEN": "127.0.0.53:8025"},
        {"MXRELAY_HTTP_LISTEN": "localhost:8025"},
        {"MXRELAY_HTTP_LISTEN": "[::1]:8025"},
        {"MXRELAY_HTTP_LISTEN": "0.0.0.0:8025", **USERS},
        {"MXRELAY_HTTP_LISTEN": "[::]:8025", **USERS, "MXRELAY_UI_OPERATORS": "alice,bob"},
        {"MXRELAY_HTTP_LISTEN": "0.0.0.0:8025", **PROXY},
        {"MXRELAY_HTTP_LISTEN": "10.0.0.7:8025", **PROXY, "MXRELAY_SEND_API_AUTH_FILE": "/s"},
    ],
)
def test_these_load(env: dict[str, str]) -> None:
    load_settings(env, hostname=lambda: "relay.example.net")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MXRELAY_HTTP_LISTEN": "0.0.0.0:8025"},
            "MXRELAY_HTTP_LISTEN: '0.0.0.0:8025' is not a loopback address, and the web UI and "
            "API have no users; expected MXRELAY_UI_AUTH_FILE, MXRELAY_UI_AUTH=none behind an "
            "authenticating proxy, or a loopback address",
        ),
        ({"MXRELAY_HTTP_LISTEN": ":8025"}, "MXRELAY_HTTP_LISTEN: '0.0.0.0:8025' is not a loop"),
        ({"MXRELAY_HTTP_LISTEN": "[::]:8025"}, "MXRELAY_HTTP_LISTEN: '[::]:8025' is not a loop"),
        ({"MXRELAY_HTTP_LISTEN": "192.0.2.1:80"}, "MXRELAY_HTTP_LISTEN: '192.0.2.1:80' is not"),
        ({"MXRELAY_HTTP_LISTEN": "relay.internal:80"}, "MXRELAY_HTTP_LISTEN: 'relay.internal:80'"),
        (
            # only a send API users file is no login for the UI
            {"MXRELAY_HTTP_LISTEN": "0.0.0.0:8025", "MXRELAY_SEND_API_AUTH_FILE": "/s"},
            "MXRELAY_HTTP_LISTEN: '0.0.0.0:8025' is not a loopback address",
        ),
        (
            {**PROXY, **USERS},
            "MXRELAY_UI_AUTH: none, but MXRELAY_UI_AUTH_FILE is set; expected basic with the "
            "users file, or none without it",
        ),
        (
            {"MXRELAY_UI_OPERATORS": "alice"},
            "MXRELAY_UI_OPERATORS: set, but MXRELAY_UI_AUTH_FILE is not; expected the users file "
            "the operators are in",
        ),
        ({"MXRELAY_UI_AUTH": "off"}, "MXRELAY_UI_AUTH: 'off' is not valid"),
        ({**USERS, "MXRELAY_UI_OPERATORS": "a:b"}, "MXRELAY_UI_OPERATORS: 'a:b' has 'a:b', which"),
        ({"MXRELAY_UI_CORS_ORIGINS": "*.example.com"}, "MXRELAY_UI_CORS_ORIGINS: '*.example.com'"),
        (
            {"MXRELAY_UI_CORS_ORIGINS": "https://a.example/path"},
            "MXRELAY_UI_CORS_ORIGINS: 'https://a.example/path' has",
        ),
        (
            {"MXRELAY_UI_CORS_ORIGINS": "ftp://a.example"},
            "MXRELAY_UI_CORS_ORIGINS: 'ftp://a.example' has",
        ),
        (
            {"MXRELAY_UI_CORS_ORIGINS": "https://user@a.example"},
            "MXRELAY_UI_CORS_ORIGINS: 'https://user@a.example' has",
        ),
        ({"MXRELAY_UI_CORS_ORIGINS": "a.example:99999"}, "MXRELAY_UI_CORS_ORIGINS: 'a.example:9"),
    ],
)
def test_these_are_refused_in_one_line(env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env, hostname=lambda: "relay.example.net")
    message = str(raised.value)
    assert message.startswith(line)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("", ()),
        ("https://App.Example.com", ("https://app.example.com",)),
        ("https://app.example.com/", ("https://app.example.com",)),
        ("http://localhost:3000, localhost:5173", ("http://localhost:3000", "localhost:5173")),
        ("https://bücher.example", ("https://xn--bcher-kva.example",)),
        ("http://[::1]:8080", ("http://[::1]:8080",)),
        ("https://a.example, *", ("*",)),
    ],
)
def test_cors_origins_as_a_browser_spells_them(value: str, origins: tuple[str, ...]) -> None:
    settings = load_settings({"MXRELAY_UI_CORS_ORIGINS": value}, hostname=lambda: "relay")
    assert settings.web.cors_origins == origins


def test_operators_keep_their_case_and_a_star_names_everyone() -> None:
    settings = load_settings({**USERS, "MXRELAY_UI_OPERATORS": "Alice, bob"}, hostname=str)
    assert settings.web.ui_operators == ("Alice", "bob")
    settings = load_settings({**USERS, "MXRELAY_UI_OPERATORS": "alice,*"}, hostname=str)
    assert settings.web.ui_operators == ("*",)
