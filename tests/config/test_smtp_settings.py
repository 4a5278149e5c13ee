"""The SMTP settings that would break every session are refused at start-up: exit 2, one line
naming the variable (through the real command line)."""

from __future__ import annotations

import pytest

from mxrelay.config import load_settings
from tests.support.processes import run_mxrelay


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MXRELAY_HOSTNAME": "relay.example.net\r\n250 injected"},
            "MXRELAY_HOSTNAME: 'relay.example.net\\r\\n250 injected' is not a host name",
        ),
        ({"MXRELAY_HOSTNAME": "relay\nexample"}, "MXRELAY_HOSTNAME: 'relay\\nexample' is not"),
        ({"MXRELAY_HOSTNAME": "relay_1.example"}, "MXRELAY_HOSTNAME: 'relay_1.example' is not"),
        (
            {"MXRELAY_SMTP_COMMAND_DEADLINE": "0s"},
            "MXRELAY_SMTP_COMMAND_DEADLINE: '0s' is below the minimum, 1s; "
            "expected a duration from 1s to 1h",
        ),
        (
            {"MXRELAY_SMTP_DATA_DEADLINE": "2d"},
            "MXRELAY_SMTP_DATA_DEADLINE: '2d' is above the maximum, 1d",
        ),
        (
            {"MXRELAY_SMTP_ERROR_SLEEP_TIME": "5m"},
            "MXRELAY_SMTP_ERROR_SLEEP_TIME: '5m' is above the maximum, 1m",
        ),
    ],
)
@pytest.mark.slow
def test_bad_smtp_settings_stop_start_up_with_one_line(env: dict[str, str], message: str) -> None:
    result = run_mxrelay("serve", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mxrelay: configuration error: " + message), lines[0]


@pytest.mark.parametrize(
    ("written", "used"),
    [("relay.example.net", "relay.example.net"), ("Relay-1.example.net.", "Relay-1.example.net")],
)
def test_host_names_are_accepted(written: str, used: str) -> None:
    assert load_settings({"MXRELAY_HOSTNAME": written}).service.hostname == used


def test_a_system_name_that_is_no_host_name_falls_back_to_localhost() -> None:
    settings = load_settings({}, hostname=lambda: "build_box\r\n")
    assert settings.service.hostname == "localhost"
