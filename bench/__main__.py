"""`python -m bench [NAME ...]`: run every benchmark, or the named ones, and print their figures.

Each benchmark is a module `bench/NAME.py` with `run() -> None` that prints its own tables. The
list below is fixed, not discovered, so a typo is an error rather than an empty run; a module that
does not exist yet is reported as skipped, and so is one that raises `rig.Unavailable` (not root,
a program missing). A benchmark that fails is reported and the others still run; the exit status
is 1 if any failed, 130 if interrupted. SIGTERM stops the run like Ctrl-C, so rigs still clean up.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TextIO

BENCHMARKS = (
    "front_door",
    "smtp_engine",
    "mime",
    "store",
    "graph",
    "data_memory",
    "console",
    "message_log",
    "soak",
)
EXIT_INTERRUPTED = 130


def canonical(name: str) -> str:
    """`smtp-engine` and `smtp_engine` both name bench/smtp_engine.py."""
    return name.strip().replace("-", "_")


def select(names: Sequence[str]) -> list[str]:
    """The benchmarks to run, in the fixed order; ValueError names any unknown one."""
    wanted = {canonical(name) for name in names}
    unknown = sorted(wanted - set(BENCHMARKS))
    if unknown:
        raise ValueError(
            f"unknown benchmark: {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})"
        )
    return [name for name in BENCHMARKS if not wanted or name in wanted]


def run_one(name: str, out: TextIO, clock: Callable[[], float] = time.monotonic) -> bool:
    """Run bench.NAME; False if it failed (skips count as success)."""
    from bench.rig import Unavailable

    if importlib.util.find_spec(f"bench.{name}") is None:
        out.write(f"== {name}: skipped (bench/{name}.py does not exist yet)\n")
        return True
    module = importlib.import_module(f"bench.{name}")
    out.write(f"== {name}\n")
    out.flush()
    started = clock()
    try:
        module.run()
    except Unavailable as exc:
        out.write(f"== {name}: skipped ({exc})\n")
        return True
    except Exception:
        out.write(f"== {name}: FAILED\n{traceback.format_exc()}")
        return False
    out.write(f"== {name}: done in {clock() - started:.0f} s\n\n")
    out.flush()
    return True


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    args = parser.parse_args(argv)
    try:
        names = select(args.names)
    except ValueError as exc:
        parser.error(str(exc))
    signal.signal(signal.SIGTERM, _terminate)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    sys.stdout.write(
        f"mxrelay benchmarks, {now}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load}\n\n"
    )
    try:
        results = [run_one(name, sys.stdout) for name in names]
    except KeyboardInterrupt:
        sys.stdout.write("== interrupted\n")
        return EXIT_INTERRUPTED
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
