"""`mxrelay serve`: run the relay until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from collections.abc import Mapping
from typing import Any

from mxrelay.cli.common import load_or_exit

EXIT_STARTUP = 1
OPEN_FILES_CEILING = 1 << 20
"""Used instead of an unlimited hard limit, which the kernel refuses as a soft one."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the relay",
        description="Run the relay: SMTP listener, recipient checks, delivery, metrics and health.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    # Imported here so that `mxrelay --help` and the other commands start fast.
    from mxrelay import log
    from mxrelay.app import Relay, StartupError

    settings = load_or_exit(environ)
    log.configure(settings.service.log_format, settings.service.log_level)
    raise_open_files_limit()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # uvloop is optional off Linux/macOS
        runner = asyncio.run
    try:
        runner(Relay(settings, environ=environ).run())
    except StartupError as exc:
        sys.stderr.write(f"mxrelay: cannot start: {exc}\n")
        return EXIT_STARTUP
    return 0


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one, as servers do, and return it.

    The usual soft limit (1,024) is far below what the SMTP and HTTP connection limits together
    allow; the hard limit is what the operator (or the container runtime) granted.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return soft  # kept as it was; the connection limits still bound what is used
        return target
    return soft
