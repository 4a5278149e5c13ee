"""The shape of the code, as the code declares it: no import cycles and imports only down the layers.

Imports are read from the source with `ast`, not by importing it, so imports under
`if TYPE_CHECKING:` and inside functions count too: a cycle hidden that way is still a cycle, only
one that Python happens not to trip over. The rules are STYLE.md's "Import direction".
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "mxrelay"

# Cycles that exist today and are being taken apart; a new one fails the test, and an entry that no
# longer matches a cycle fails it too, so the list can only shrink.
ALLOWED_CYCLES: frozenset[frozenset[str]] = frozenset()

# Leaves: shared values and services every stage may use.
LEAVES = frozenset(
    {
        "model",
        "config",
        "metrics",
        "log",
        "health",
        "tasks",
        "received",
        "passwords",
        "rates",
        "submission",
    }
)

# What each area may import besides itself and the leaves. Nothing may import `app` or `cli`; the
# SMTP engine reaches DNS and storage only through the callables its policy is handed.
ALLOWED: Mapping[str, frozenset[str]] = {
    "model": frozenset(),
    "config": frozenset({"model", "log"}),
    "metrics": frozenset({"model"}),
    "log": frozenset(),
    "health": frozenset(),
    "tasks": frozenset(),
    "received": frozenset({"model"}),
    "passwords": frozenset(),
    "rates": frozenset({"log"}),
    # Mail entering without SMTP: the values the web API hands the runtime's submission.
    "submission": frozenset({"model"}),
    "smtp": LEAVES,
    "rcpt": LEAVES,
    "mime": LEAVES - {"metrics"},  # pure: what a transform did is counted by its callers
    "upstream": LEAVES,
    "store": LEAVES | {"mime"},
    "sinks": LEAVES | {"smtp", "upstream", "store", "mime"},
    "delivery": LEAVES | {"store", "mime", "upstream"},
    "web": LEAVES | {"store", "mime"},
    # The composition root: builds the stages; no area but `app` imports it.
    "runtime": LEAVES | {"smtp", "rcpt", "mime", "store", "sinks", "upstream", "delivery"},
    # Orders the stages runtime builds: starts them, stops them in reverse.
    "app": LEAVES | {"runtime", "smtp", "rcpt", "store", "web"},
    "cli": LEAVES | {"app", "smtp", "rcpt", "mime", "store", "delivery", "web"},
    "__main__": frozenset({"cli"}),
}

# What of the SMTP engine the sinks may see: the contract they implement and the named replies.
SMTP_CONTRACTS = frozenset({"mxrelay.smtp.sink", "mxrelay.smtp.replies"})

# Packages that decide without doing I/O of their own: what they may not import.
PURE = {
    "mime": frozenset(
        {"socket", "ssl", "sqlalchemy", "httpx", "aiosmtplib", "requests", "subprocess", "dns"}
    ),
}
# The recipient checker does its I/O in one module, the resolver; the rest of it decides.
DNS_IO_MODULES = frozenset({"mxrelay.rcpt.resolver"})
DNS_IO_LIBRARIES = frozenset({"socket", "ssl", "dns", "sqlalchemy", "httpx", "aiosmtplib"})


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module under root/PACKAGE by dotted name."""
    return {
        module_name(path, root): path
        for path in sorted((root / PACKAGE).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name the module imports, wherever the import statement stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def edges(known: Mapping[str, Path], root: Path = SRC) -> dict[str, set[str]]:
    """module -> the project modules it imports (a `from pkg import submodule` names the submodule)."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target in imported_names(name, path):
            if target in known and target != name:
                graph[name].add(target)
    # `from pkg import name` also yields `pkg` itself; keep it only when no submodule was meant.
    for name, path in known.items():
        for target in list(graph[name]):
            children = {t for t in graph[name] if t.startswith(target + ".")}
            if children and not _imports_package_itself(name, path, target, root):
                graph[name].discard(target)
    return graph


def _imports_package_itself(module: str, path: Path, package: str, root: Path) -> bool:
    """Whether some `from package import x` takes an x that is not a submodule."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and _absolute(module, is_package, node) == package:
            base = root.joinpath(*package.split("."))
            for alias in node.names:
                if not (base / f"{alias.name}.py").exists() and not (base / alias.name).is_dir():
                    return True
        elif isinstance(node, ast.Import) and any(a.name == package for a in node.names):
            return True
    return False


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def area(module: str) -> str:
    """The top-level area a module belongs to: `mxrelay.smtp.server` -> `smtp`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


KNOWN = modules(SRC)
GRAPH = edges(KNOWN)


def test_the_reader_sees_the_whole_package() -> None:
    assert "mxrelay.smtp.server" in KNOWN
    assert "mxrelay.store.backend" in GRAPH["mxrelay.store.sqlite"]


def test_no_new_import_cycles() -> None:
    found = set(cycles(GRAPH))
    new = [sorted(c) for c in found if c not in ALLOWED_CYCLES]
    assert not new, f"import cycles (TYPE_CHECKING and function-level imports count): {new}"


def test_the_allowed_cycles_still_exist() -> None:
    """An entry that no longer matches a cycle must leave the list, so it only shrinks."""
    found = set(cycles(GRAPH))
    assert not ALLOWED_CYCLES - found, sorted(map(sorted, ALLOWED_CYCLES - found))


def test_imports_go_down_the_layers() -> None:
    wrong = sorted(
        (source, target)
        for source, targets in GRAPH.items()
        for target in targets
        if area(source) != area(target)
        and "__init__" not in {area(source), area(target)}
        and area(target) not in ALLOWED.get(area(source), frozenset())
    )
    assert not wrong, wrong


def test_the_sinks_see_only_the_smtp_engines_contracts() -> None:
    wrong = sorted(
        (source, target)
        for source, targets in GRAPH.items()
        for target in targets
        if area(source) == "sinks" and area(target) == "smtp" and target not in SMTP_CONTRACTS
    )
    assert not wrong, wrong


def test_nothing_imports_app_or_cli() -> None:
    wrong = sorted(
        (source, target)
        for source, targets in GRAPH.items()
        for target in targets
        if area(target) in {"app", "cli"} and area(source) not in {"cli", "__main__"}
    )
    assert not wrong, wrong


def _third_party(module: str) -> set[str]:
    return {name.split(".")[0] for name in imported_names(module, KNOWN[module])} - {PACKAGE}


@pytest.mark.parametrize("package", sorted(PURE))
def test_pure_packages_do_no_io(package: str) -> None:
    wrong = {
        module: sorted(_third_party(module) & PURE[package])
        for module in KNOWN
        if area(module) == package and _third_party(module) & PURE[package]
    }
    assert not wrong, wrong


def test_the_recipient_checker_does_io_only_in_its_resolver() -> None:
    wrong = {
        module: sorted(_third_party(module) & DNS_IO_LIBRARIES)
        for module in KNOWN
        if area(module) == "rcpt"
        and module not in DNS_IO_MODULES
        and _third_party(module) & DNS_IO_LIBRARIES
    }
    assert not wrong, wrong


def test_a_hidden_cycle_is_found(tmp_path: Path) -> None:
    """The detector sees cycles closed by a TYPE_CHECKING import and by a function-level import."""
    package = tmp_path / PACKAGE
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("")
    (package / "a" / "one.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mxrelay.a.two import B\n"
    )
    (package / "a" / "two.py").write_text("from mxrelay.a import three\n")
    (package / "a" / "three.py").write_text("def f():\n    from . import one\n")
    (package / "a" / "four.py").write_text("from mxrelay.a import one\n")
    graph = edges(modules(tmp_path), tmp_path)
    assert cycles(graph) == [frozenset({"mxrelay.a.one", "mxrelay.a.two", "mxrelay.a.three"})]
