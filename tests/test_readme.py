"""The README's settings tables are the ones generated from mxrelay.config; its commands exist; every
log event the code writes is in its table.

To refresh the tables after adding a setting: `.venv/bin/python -m tests.test_readme --write`.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from mxrelay.cli import build_parser
from mxrelay.cli.config import markdown_table
from mxrelay.config import options

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = re.compile(r"(<!-- settings:start[^\n]*-->\n)(.*?)(<!-- settings:end -->)", re.S)


def current_section() -> str:
    match = SECTION.search(README.read_text(encoding="utf-8"))
    assert match, "README.md lacks the settings markers"
    return match.group(2)


def test_settings_tables_match_the_declarations() -> None:
    assert current_section().strip() == markdown_table().strip(), (
        "README settings tables are out of date: run `.venv/bin/python -m tests.test_readme --write`"
    )


def test_every_variable_is_documented_once() -> None:
    text = README.read_text(encoding="utf-8")
    for option in options():
        assert text.count(f"| `{option.env}`") == 1, option.env


def test_quick_start_is_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quick, re.M)
    assert commands == ["make run", "make test"]


def test_documented_commands_exist() -> None:
    text = README.read_text(encoding="utf-8")
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert choices is not None
    for command in re.findall(r"`mxrelay ([a-z-]+)", text):
        if command not in ("--help", "COMMAND"):
            assert command in choices, command


def logged_events() -> set[str]:
    """Every event name the code logs: the literal second argument of each `event(...)` call and
    of each `ThrottledLog(...)`, which writes its event at most once per interval."""
    names = set()
    for path in (ROOT / "src" / "mxrelay").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("event", "ThrottledLog") and isinstance(node.args[1], ast.Constant):
                names.add(str(node.args[1].value))
    return names


def test_every_log_event_is_in_the_readme_table() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("### Log events") :]
    table = table[: table.index("\n## ")]
    documented = set(re.findall(r"`([^`]+)`", table.split("| event |", 1)[1]))
    assert len(logged_events()) > 20
    assert logged_events() - documented == set()


def write() -> None:
    text = README.read_text(encoding="utf-8")
    README.write_text(
        SECTION.sub(lambda m: m.group(1) + markdown_table() + m.group(3), text), encoding="utf-8"
    )


if __name__ == "__main__" and "--write" in sys.argv:
    write()
