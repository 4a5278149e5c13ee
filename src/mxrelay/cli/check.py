"""`mxrelay check ADDRESS_OR_DOMAIN…`: what the relay would answer at RCPT, and why.

Runs the same recipient check as the SMTP server (same settings, same resolver), bypassing the
cache. Exit status: 0 if every target would be accepted, 1 if any would be refused permanently,
2 if any would get a temporary failure (and none a permanent one).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from mxrelay.cli.common import load_or_exit
from mxrelay.log import printable
from mxrelay.model import RecipientVerdict

EXIT_ACCEPTED, EXIT_PERMANENT, EXIT_TEMPORARY = 0, 1, 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="show the reply the relay would give each recipient, with the DNS evidence",
        description="Show the RCPT reply the relay would give each address (a bare domain is "
        "checked as postmaster@domain) and the DNS evidence behind it. Exit 0: all accepted; "
        "1: any permanent refusal; 2: any temporary failure.",
    )
    parser.add_argument("targets", nargs="+", metavar="ADDRESS_OR_DOMAIN")
    parser.add_argument(
        "--no-smtputf8",
        action="store_true",
        help="judge as if the client had not declared SMTPUTF8 (non-ASCII addresses get 553)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from mxrelay.rcpt.check import explain  # imported here so other commands start fast

    settings = load_or_exit(environ)

    async def check_all() -> list[RecipientVerdict]:
        return [
            await explain(target, settings.dns, settings.policy, smtputf8=not args.no_smtputf8)
            for target in args.targets
        ]

    verdicts = asyncio.run(check_all())
    for target, verdict in zip(args.targets, verdicts, strict=True):
        sys.stdout.write(render(target, verdict))
    if any(verdict.reply.is_permanent for verdict in verdicts):
        return EXIT_PERMANENT
    if any(verdict.reply.is_transient for verdict in verdicts):
        return EXIT_TEMPORARY
    return EXIT_ACCEPTED


def render(target: str, verdict: RecipientVerdict) -> str:
    lines = [f"{target}: {verdict.reply}"]
    details = [f"reason: {verdict.reason.value}"]
    if verdict.stage:
        details.append(f"decided at: {verdict.stage}")
    if verdict.domain:
        details.append(f"looked up: {verdict.domain}")
    lines.append("  " + "; ".join(details))
    lines.extend(f"  {line}" for line in verdict.evidence)
    # The target and the DNS evidence (names, replies) may carry control characters.
    return "\n".join(printable(line) for line in lines) + "\n"
