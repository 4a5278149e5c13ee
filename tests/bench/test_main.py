"""`python -m bench`: selection by fixed names, skips, failures."""

from __future__ import annotations

import importlib.machinery
import io
import sys
import types

import pytest

from bench import __main__ as entry
from bench import rig


def test_names_are_canonical_and_run_in_the_fixed_order() -> None:
    assert entry.canonical("smtp-engine") == "smtp_engine"
    assert entry.select(["smtp-engine", "front_door"]) == ["front_door", "smtp_engine"]
    assert entry.select([]) == list(entry.BENCHMARKS)
    with pytest.raises(ValueError, match="unknown benchmark: nope"):
        entry.select(["nope", "front_door"])


def test_an_unknown_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["front-door", "nope"])
    assert exit_info.value.code == 2
    assert "unknown benchmark: nope" in capsys.readouterr().err


def _install(monkeypatch: pytest.MonkeyPatch, name: str, error: Exception | None) -> list[str]:
    calls: list[str] = []

    def run() -> None:
        calls.append(name)
        if error is not None:
            raise error

    module = types.ModuleType(f"bench.{name}")
    module.__spec__ = importlib.machinery.ModuleSpec(f"bench.{name}", None)
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"bench.{name}", module)
    return calls


def test_a_module_that_does_not_exist_yet_is_skipped() -> None:
    out = io.StringIO()
    assert entry.run_one("not_written_yet", out)
    assert (
        out.getvalue()
        == "== not_written_yet: skipped (bench/not_written_yet.py does not exist yet)\n"
    )


def test_a_benchmark_runs_and_its_time_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _install(monkeypatch, "fine", None)
    ticks = iter([10.0, 13.0])
    out = io.StringIO()
    assert entry.run_one("fine", out, clock=lambda: next(ticks))
    assert calls == ["fine"]
    assert out.getvalue() == "== fine\n== fine: done in 3 s\n\n"


def test_an_unavailable_benchmark_is_skipped_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(monkeypatch, "rootless", rig.Unavailable("needs root"))
    out = io.StringIO()
    assert entry.run_one("rootless", out)
    assert out.getvalue().endswith("== rootless: skipped (needs root)\n")


def test_a_failing_benchmark_is_reported_and_counts_as_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(monkeypatch, "broken", RuntimeError("sink went away"))
    out = io.StringIO()
    assert not entry.run_one("broken", out)
    assert "== broken: FAILED" in out.getvalue()
    assert "RuntimeError: sink went away" in out.getvalue()
