"""A small reader for the project's Dockerfile: instructions, stages, ARG defaults, ENV values.

It understands what this Dockerfile uses (line continuations, comments, parser directives,
`KEY=value` ENV pairs with double quotes, JSON exec forms) and fails loudly on anything else, so
the tests never silently misread the file. No Python library parses Dockerfiles well enough to be
worth a dependency for this.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    arguments: str  # the rest of the logical line, continuations joined
    line: int


@dataclass
class Stage:
    base: str  # the FROM image, ARGs resolved
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def instructions(text: str) -> list[Instruction]:
    result: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped, as Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip(), start))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def substitute(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return _VARIABLE.sub(replace, value)


def parse_env(arguments: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` (the only ENV form used here)."""
    pairs = {}
    for token in shlex.split(arguments, posix=True):
        key, sep, value = token.partition("=")
        assert sep, f"ENV must use KEY=value pairs: {arguments}"
        pairs[key] = value
    return pairs


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT; AssertionError for the shell form."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not an exec form: {arguments}"
    assert all(isinstance(item, str) for item in value)
    return [str(item) for item in value]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for item in instructions(path.read_text(encoding="utf-8")):
            if item.keyword == "ARG" and not stages:
                name, _, default = item.arguments.partition("=")
                global_args[name] = default
            elif item.keyword == "FROM":
                words = item.arguments.split()
                assert not words[0].startswith("--"), f"FROM flags are not supported: {item}"
                stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
                stages.append(Stage(substitute(words[0], global_args), stage_name))
            else:
                assert stages, f"{item.keyword} before the first FROM"
                stages[-1].instructions.append(item)
        return cls(global_args, stages)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def env(self, stage: Stage) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in stage.instructions:
            if item.keyword == "ENV":
                values.update(parse_env(item.arguments))
        return values

    def one(self, stage: Stage, keyword: str) -> Instruction:
        found = [item for item in stage.instructions if item.keyword == keyword]
        assert len(found) == 1, f"expected one {keyword} in the stage, found {len(found)}"
        return found[0]
