"""Every duration setting has explicit bounds: zero, too much, or a number past any clock is one
line naming the variable and exit status 2, never a busy loop, a timed-out session or a traceback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.cli import main
from mxrelay.config import (
    ConfigError,
    Option,
    Settings,
    format_duration,
    load_settings,
    options,
    parse_duration,
)
from tests.support.processes import run_mxrelay


def duration_options() -> list[Option]:
    """The options whose type is a duration, found from the table's types, not from their forms."""
    durations = set()
    for group, group_field in Settings.model_fields.items():
        model = group_field.annotation
        assert isinstance(model, type)
        for name, info in model.model_fields.items():
            if info.annotation is timedelta:
                durations.add((group, name))
    return [option for option in options() if (option.group, option.name) in durations]


DURATIONS = duration_options()

COMPANIONS = {"MXRELAY_DNS_CACHE_MAX_TTL": {"MXRELAY_DNS_CACHE_MIN_TTL": "0s"}}
"""What a value needs beside it to pass the rules spanning several options (minimum <= maximum)."""


def test_the_table_has_durations() -> None:
    """Control: the lookup by type finds them (the two named in the report among them)."""
    names = {option.env for option in DURATIONS}
    assert {"MXRELAY_STORE_PRUNE_INTERVAL", "MXRELAY_QUEUE_LEASE_TIME"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize("option", DURATIONS, ids=lambda o: o.env)
def test_every_duration_declares_both_bounds_and_states_them(option: Option) -> None:
    assert isinstance(option.least, timedelta), f"{option.env} has no lower bound"
    assert isinstance(option.most, timedelta), f"{option.env} has no upper bound"
    assert option.least < option.most
    assert option.least <= load_settings_default(option) <= option.most
    words = option.form.split()
    assert words[:3] == ["a", "duration", "from"], option.form
    assert words[4] == "to", option.form
    assert (parse_duration(words[3]), parse_duration(words[5])) == (option.least, option.most)


def load_settings_default(option: Option) -> timedelta:
    value = getattr(getattr(load_settings({}, hostname=lambda: "relay"), option.group), option.name)
    assert isinstance(value, timedelta)
    return value


def refusal(env: str, value: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`mxrelay config` with one variable set: the exit status must be 2; returns stderr."""
    with pytest.raises(SystemExit) as stopped:
        main(["config"], {env: value})
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    return err


@pytest.mark.parametrize("option", DURATIONS, ids=lambda o: o.env)
def test_out_of_bounds_is_one_line_and_status_2(
    option: Option, capsys: pytest.CaptureFixture[str]
) -> None:
    assert isinstance(option.least, timedelta)
    assert isinstance(option.most, timedelta)
    prefix = f"mxrelay: configuration error: {option.env}: "
    if option.least > timedelta(0):
        below = format_duration(option.least - timedelta(milliseconds=1))
        err = refusal(option.env, below, capsys)
        assert err.startswith(prefix + f"'{below}' is below the minimum, "), err
    above = format_duration(option.most + timedelta(seconds=1))
    err = refusal(option.env, above, capsys)
    assert err.startswith(prefix + f"'{above}' is above the maximum, "), err
    for huge in ("99999999999999999999d", "9" * 400 + "w"):
        err = refusal(option.env, huge, capsys)
        assert err.startswith(prefix)
        assert "Traceback" not in err
    for bound in (option.least, option.most):
        env = {option.env: format_duration(bound), **COMPANIONS.get(option.env, {})}
        assert main(["config"], env) == 0
        assert f"{option.env}={format_duration(bound)}\n" in capsys.readouterr().out


@given(
    option=st.sampled_from(DURATIONS),
    seconds=st.one_of(
        st.floats(min_value=0, max_value=1e30, allow_nan=False),
        st.integers(min_value=0, max_value=10**40),
    ),
    unit=st.sampled_from(["", "ms", "s", "m", "h", "d", "w"]),
)
def test_any_duration_loads_within_bounds_or_is_refused_in_one_line(
    option: Option, seconds: float, unit: str
) -> None:
    text = f"{seconds}{unit}"
    try:
        environ = {option.env: text, **COMPANIONS.get(option.env, {})}
        settings = load_settings(environ, hostname=lambda: "relay")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{option.env}: ")
        assert "\n" not in message
        return
    value = getattr(getattr(settings, option.group), option.name)
    assert option.least <= value <= option.most


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MXRELAY_STORE_PRUNE_INTERVAL": "0s"}, "MXRELAY_STORE_PRUNE_INTERVAL: '0s' is below"),
        ({"MXRELAY_QUEUE_LEASE_TIME": "0s"}, "MXRELAY_QUEUE_LEASE_TIME: '0s' is below"),
        ({"MXRELAY_SMTP_COMMAND_TIMEOUT": "0s"}, "MXRELAY_SMTP_COMMAND_TIMEOUT: '0s' is below"),
        (
            {"MXRELAY_QUEUE_LIFETIME": "99999999999999d"},
            "MXRELAY_QUEUE_LIFETIME: '99999999999999d' is too long to be a duration",
        ),
        (
            {"MXRELAY_DELIVERY": "hold", "MXRELAY_ICS_STRIP": "@@@"},
            "MXRELAY_ICS_STRIP: '@@@' is not valid ('@@@' is neither an address nor an @domain)",
        ),
        (
            {"MXRELAY_DELIVERY": "hold", "MXRELAY_ICS_STRIP": "off,@example.com"},
            "MXRELAY_ICS_STRIP: 'off,@example.com' is not valid",
        ),
    ],
)
@pytest.mark.slow
def test_serve_refuses_what_used_to_spin_or_crash(
    env: dict[str, str], message: str, tmp_path: object
) -> None:
    """The reported values, through `mxrelay serve` itself: exit 2 and one line, before anything
    listens (a queued mode, where a bad MXRELAY_ICS_STRIP used to end in a traceback)."""
    env = {"MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db", **env}
    result = run_mxrelay("serve", env={**env, "MXRELAY_SMTP_LISTEN": "127.0.0.1:0"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [lines[0]]
    assert lines[0].startswith("mxrelay: configuration error: " + message)
