"""An MXRELAY_ variable that is not a setting stops start-up (status 2, one line, the closest
name), as the README promises, instead of leaving the setting it meant at its default."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mxrelay.config import load_settings
from mxrelay.config.load import TEST_VARIABLES, known_variables
from tests.support.processes import run_mxrelay

ROOT = Path(__file__).resolve().parents[2]

DELIBERATELY_UNKNOWN = {
    "MXRELAY_NO_SUCH_SETTING",
    "MXRELAY_GRAPH_TENANT_ID_FILE",
    "MXRELAY_RETRY_MAXIMUM",
    "MXRELAY_UPSTREAM_PASWORD",
    "MXRELAY_ZZZ",
}
"""Names the tests use because they are not settings."""


def serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_mxrelay(
        "serve",
        env={"MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db", **env},
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MXRELAY_RETRY_MAXIMUM": "1h"},
            "MXRELAY_RETRY_MAXIMUM: is not a setting of mxrelay (did you mean MXRELAY_RETRY_MAX?)",
        ),
        (
            {"MXRELAY_GRAPH_TENANT_ID_FILE": "/run/secrets/tenant"},
            "MXRELAY_GRAPH_TENANT_ID_FILE: is not a setting of mxrelay "
            "(did you mean MXRELAY_GRAPH_TENANT_ID?)",
        ),
        (
            {"MXRELAY_ZZZ": "1"},
            "MXRELAY_ZZZ: is not a setting of mxrelay (see `mxrelay config --markdown`)",
        ),
    ],
)
@pytest.mark.slow
def test_an_unknown_variable_stops_start_up(env: dict[str, str], line: str, tmp_path: Path) -> None:
    result = serve(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"mxrelay: configuration error: {line}; expected a known MXRELAY_ variable"
    ]


@pytest.mark.slow
def test_the_value_of_a_misspelt_secret_is_never_shown(tmp_path: Path) -> None:
    result = serve({"MXRELAY_UPSTREAM_PASWORD": "hunter2"}, tmp_path)
    assert result.returncode == 2
    assert "did you mean MXRELAY_UPSTREAM_PASSWORD?" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.slow
def test_secret_files_and_the_test_suites_knobs_are_accepted(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    env = {
        "MXRELAY_UPSTREAM_PASSWORD_FILE": str(secret),
        "MXRELAY_FUZZ_EXAMPLES": "10",
        "MXRELAY_HYPOTHESIS_EXAMPLES": "10",
        "UNRELATED_VARIABLE": "x",
    }
    result = run_mxrelay("config", env=env)
    assert result.returncode == 0, result.stderr
    assert "MXRELAY_UPSTREAM_PASSWORD=********" in result.stdout


def test_every_mxrelay_name_in_the_repository_is_a_setting_or_a_known_exception() -> None:
    """Whatever reads or sets an MXRELAY_ variable (code, tests, benchmarks, manifests, the
    image, the docs) names a setting, a secret's *_FILE, or a test-suite knob, so refusing
    unknown names cannot stop a relay that the project itself configures."""
    pattern = re.compile(r"\bMXRELAY_[A-Z0-9_]*[A-Z0-9]\b")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    seen: dict[str, str] = {}
    for name in listed:
        path = ROOT / name
        if path.is_file():
            for variable in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
                seen.setdefault(variable, name)
    allowed = known_variables() | set(TEST_VARIABLES) | DELIBERATELY_UNKNOWN
    strays = {name: where for name, where in seen.items() if name not in allowed}
    assert strays == {}
    assert {"MXRELAY_SMTP_LISTEN", "MXRELAY_FUZZ_EXAMPLES"} <= set(seen)  # control


def test_unknown_names_are_refused_before_bad_values() -> None:
    """A misspelt name is reported even when another value is bad too: it is the likelier cause."""
    with pytest.raises(ValueError, match=r"^MXRELAY_RETRY_MAXIMUM: is not a setting"):
        load_settings({"MXRELAY_RETRY_MAXIMUM": "1h", "MXRELAY_RETRY_MAX": "5x"})
