"""The tests mirror the package layout: what tests `mxrelay/store/queue/admin.py` is found at
`tests/store/queue/test_admin.py`.

Three rules, read from the tree alone:
1. every folder of tests is the mirror of a package of `src/mxrelay`, but for the suite's own
   areas (`OWN_AREAS`: its servers and data, whole-relay tests, real API clients, the deployment,
   the benchmarks);
2. a test module named after a module (`test_<module>.py`, or `test_<module>_<aspect>.py`, the
   longest such prefix counting) sits in the mirror of a package that has a module of that name;
   one named after a package, in that package's mirror or beside it;
3. at the top of `tests/`, a test module is named after a top-level module (`app`, `model`...)
   or is one of the suite's checks of the whole tree (`SUITE_CHECKS`).
A test named after nothing in `src` (a behaviour, such as `smtp/test_smuggling.py`) may sit in any
mirror folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "mxrelay"
TESTS = ROOT / "tests"

OWN_AREAS = frozenset({"bench", "clients", "data", "deploy", "support", "system"})
SUITE_CHECKS = frozenset({"test_architecture.py", "test_layout.py", "test_readme.py"})

Package = tuple[str, ...]
"""A package of mxrelay as its path below `src/mxrelay` (`()` for mxrelay itself)."""


@functools.cache
def packages() -> frozenset[Package]:
    return frozenset(init.parent.relative_to(SRC).parts for init in SRC.rglob("__init__.py"))


@functools.cache
def module_homes() -> dict[str, set[Package]]:
    """Each module name, and the packages that have a module of that name."""
    homes: dict[str, set[Package]] = {}
    for package in packages():
        for module in (SRC.joinpath(*package)).glob("*.py"):
            if not module.stem.startswith("__"):
                homes.setdefault(module.stem, set()).add(package)
    return homes


@functools.cache
def package_homes() -> dict[str, set[Package]]:
    """Each package name, and where a test named after it may sit: its mirror and its parent's."""
    homes: dict[str, set[Package]] = {}
    for package in packages():
        if package:
            homes.setdefault(package[-1], set()).update({package, package[:-1]})
    return homes


def homes_of(test_file: str) -> set[Package] | None:
    """Where a test module of this name belongs; None when it is named after nothing in src."""
    name = test_file.removeprefix("test_").removesuffix(".py")
    modules, named_packages = module_homes(), package_homes()
    if name in modules or name in named_packages:
        return modules.get(name, set()) | named_packages.get(name, set())
    words = name.split("_")
    for length in range(len(words) - 1, 0, -1):
        prefix = "_".join(words[:length])
        if prefix in modules or prefix in named_packages:
            return modules.get(prefix, set()) | named_packages.get(prefix, set())
    return None


def misplaced(path: Path) -> str | None:
    """Why the test module at `path` (relative to tests/) is out of place, or None."""
    folder = path.parent.parts
    if folder and folder[0] in OWN_AREAS:
        return None
    if not folder and path.name in SUITE_CHECKS:
        return None
    if folder not in packages():
        return f"tests/{path.parent}/ mirrors no package of src/mxrelay"
    homes = homes_of(path.name)
    if homes is None:
        if not folder:
            return "names no top-level module and is no check of the whole tree"
        return None
    if folder not in homes:
        where = " or ".join(sorted(f"tests/{'/'.join(home)}/".replace("//", "/") for home in homes))
        return f"belongs in {where}"
    return None


def suite_modules() -> list[Path]:
    return sorted(p.relative_to(TESTS) for p in TESTS.rglob("test_*.py"))


def test_every_folder_of_tests_mirrors_a_package() -> None:
    folders = {p.parent.relative_to(TESTS).parts for p in TESTS.rglob("*.py")}
    strays = [
        "/".join(folder)
        for folder in sorted(folders)
        if folder and folder[0] not in OWN_AREAS and folder not in packages()
    ]
    assert strays == [], "test folders that mirror no package of src/mxrelay"


def test_every_test_module_sits_in_the_mirror_of_what_it_tests() -> None:
    wrong = {f"tests/{path}": why for path in suite_modules() if (why := misplaced(path))}
    assert wrong == {}


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("test_fuzz_accept.py", "names no top-level module and is no check of the whole tree"),
        ("test_settle.py", "belongs in tests/delivery/"),
        ("smtp/test_settings.py", "belongs in tests/config/"),
        (
            "delivery/test_auth_tokens.py",
            "belongs in tests/delivery/graph/ or tests/smtp/ or tests/web/",
        ),
        ("mailbox/test_anything.py", "tests/mailbox/ mirrors no package of src/mxrelay"),
    ],
)
def test_the_rules_catch_a_module_out_of_place(path: str, why: str) -> None:
    assert misplaced(Path(path)) == why


@pytest.mark.parametrize(
    "path",
    [
        "test_app.py",  # a top-level module
        "test_metrics_labels.py",  # one of its aspects
        "store/queue/test_queue.py",  # named after its package, in its mirror
        "store/test_migrations.py",  # named after a package, beside it
        "smtp/test_smuggling.py",  # a behaviour of the package
        "system/test_serve.py",  # the suite's own areas
    ],
)
def test_the_rules_leave_a_module_in_place_alone(path: str) -> None:
    assert misplaced(Path(path)) is None
