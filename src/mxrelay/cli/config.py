"""`mxrelay config`: print the effective configuration, secrets redacted.

After the settings, as comment lines (which an env file ignores), the proxy outbound HTTPS takes
to the identity platform and to Graph: the decision both clients make (delivery/graph/proxy.py),
from HTTPS_PROXY, ALL_PROXY and NO_PROXY, shown in Graph mode or whenever one of those is set.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from mxrelay.cli.common import EXIT_CONFIG, load_or_exit
from mxrelay.config import Settings, effective, options, render_value
from mxrelay.delivery.graph.proxy import NO_PROXY, PROXY_VARIABLES, OutboundProxy, ProxyProblem
from mxrelay.model import DeliveryMode


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
    graph_mode = settings.service.delivery is DeliveryMode.GRAPH
    if not graph_mode and not _proxy_variables_set(environ):
        return 0
    try:
        lines = proxy_routes(settings, OutboundProxy.from_environ(environ))
    except ProxyProblem as problem:
        if graph_mode:  # `serve` would refuse to start
            sys.stderr.write(f"mxrelay: configuration error: {problem}\n")
            return EXIT_CONFIG
        lines = [f"outbound HTTPS: {problem}"]
    sys.stdout.writelines(f"# {line}\n" for line in lines)
    return 0


def proxy_routes(settings: Settings, proxy: OutboundProxy) -> list[str]:
    """Which proxy, if any, each Graph host is reached through (never a proxy's credentials)."""
    lines = [f"outbound HTTPS: {proxy.describe()}"]
    for what, url in (
        ("identity platform", settings.graph.authority),
        ("graph", settings.graph.endpoint),
    ):
        route = proxy.route(url)
        lines.append(f"{what} {route.host}:{route.port}: {route.describe()}")
    return lines


def _proxy_variables_set(environ: Mapping[str, str]) -> bool:
    names = {name.lower() for name in environ}
    return any(variable in names for variable in (*PROXY_VARIABLES, NO_PROXY))


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
