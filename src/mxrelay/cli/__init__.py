"""Command line: `mxrelay serve|config|check|queue|graph-test|db`.

Each subcommand lives in its own module with a `register(subparsers)` function that adds its parser
and sets `handler` to a function taking the parsed arguments and the environment and returning the
exit status. This module only assembles them; it holds no logic of its own.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence

from mxrelay import __version__

SUBCOMMANDS = ("serve", "config", "check", "queue", "graph_test", "db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mxrelay",
        description="Outbound email relay: recipient-domain validation, message log, "
        "delivery through Microsoft Graph or an SMTP smarthost.",
        epilog="Configuration comes from MXRELAY_* environment variables; "
        "`mxrelay config` prints them all with their effective values.",
    )
    parser.add_argument("--version", action="version", version=f"mxrelay {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mxrelay.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mxrelay.cli.{name}":
                raise
            continue  # a subcommand whose module is not part of this build
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    status: int = args.handler(args, env)
    sys.stdout.flush()
    return status
