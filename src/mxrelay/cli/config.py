"""`mxrelay config`: print the effective configuration, secrets redacted."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from mxrelay.cli.common import load_or_exit
from mxrelay.config import effective, options, render_value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print the effective configuration (secrets redacted)",
        description="Print every setting with its effective value; secrets appear as ********.",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the settings table (variable, default, meaning) as Markdown instead",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    settings = load_or_exit(environ)
    for option, value in effective(settings):
        sys.stdout.write(f"{option.env}={value}\n")
    return 0


GROUP_TITLES = {
    "service": "Service",
    "smtp": "SMTP server",
    "dns": "Recipient-domain validation (DNS)",
    "policy": "Optional recipient policies",
    "upstream": "Upstream (passthrough target or smarthost)",
    "mime": "Message transforms",
    "store": "Store",
    "queue": "Queue and retries",
    "delivery": "Delivery",
    "graph": "Microsoft Graph",
    "web": "HTTP listeners",
}


def markdown_table() -> str:
    """The README's settings tables (one per stage), generated from mxrelay.config's declarations."""
    out: list[str] = []
    group = None
    for option in options():
        if option.group != group:
            group = option.group
            title = GROUP_TITLES.get(group, group.capitalize())
            out += ["", f"#### {title}", "", "| variable | default | expected form | meaning |"]
            out.append("|---|---|---|---|")
        default = render_value(option.default, secret=option.secret) or "none"
        env = f"`{option.env}`"
        if option.secret:
            env += f" (or `{option.env}_FILE`)"
        if option.aliases:
            env += " (alias " + ", ".join(f"`{alias}`" for alias in option.aliases) + ")"
        out.append(f"| {env} | `{default}` | {option.form} | {option.help} |")
    return "\n".join(out[1:]) + "\n"
