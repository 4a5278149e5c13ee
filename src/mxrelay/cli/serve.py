"""`mxrelay serve`: run the relay until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from mxrelay.cli.common import load_or_exit

EXIT_STARTUP = 1


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
