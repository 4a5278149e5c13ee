"""How an option is declared: bounded integers, sizes and durations state their bounds in their
form."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mxrelay.config import Option, load_settings, options
from mxrelay.config.values import duration_setting, format_size, int_setting, size_setting


def test_an_integer_setting_states_its_bounds() -> None:
    field = int_setting(
        50, env="MXRELAY_SMTP_CONNECTION_LIMIT", least=1, most=100_000, help="Some."
    )
    assert field.json_schema_extra["form"] == "an integer from 1 to 100000"
    assert (field.default, field.description) == (50, "Some.")
    assert [m.ge for m in field.metadata if hasattr(m, "ge")] == [1]
    assert [m.le for m in field.metadata if hasattr(m, "le")] == [100_000]


def test_a_size_setting_states_its_bounds() -> None:
    field = size_setting(
        "64MiB", env="MXRELAY_STORE_SQLITE_READ_CACHE", least="2MiB", most="4GiB", help=""
    )
    assert field.json_schema_extra["form"] == "a size from 2MiB to 4GiB"
    assert [m.ge for m in field.metadata if hasattr(m, "ge")] == [2 * 1024**2]
    assert [m.le for m in field.metadata if hasattr(m, "le")] == [4 * 1024**3]


def test_a_duration_setting_states_its_bounds() -> None:
    field = duration_setting(
        "1s", env="MXRELAY_SMTP_ERROR_SLEEP_TIME", least="0s", most="1m", note="0s: off", help=""
    )
    assert field.json_schema_extra["form"] == "a duration from 0s to 1m (0s: off)"
    assert [m.ge for m in field.metadata if hasattr(m, "ge")] == [timedelta(0)]


@pytest.mark.parametrize(
    "option",
    [o for o in options() if isinstance(o.least, int) and isinstance(o.most, int)],
    ids=lambda o: o.env,
)
def test_every_bounded_integer_option_says_its_bounds(option: Option) -> None:
    assert option.form in (
        f"an integer from {option.least} to {option.most}",
        f"a size from {format_size(option.least)} to {format_size(option.most)}",
    )
    assert load_settings({option.env: str(option.most)})  # the bounds are inclusive
