"""`mxrelay graph-test --to ADDRESS [--from MAILBOX]`: one test message through Microsoft Graph.

For an operator setting up a tenant: it uses the configured app registration (whatever
`MXRELAY_DELIVERY` says), gets a token, looks at the permissions in it, sends one small message
and prints each step's result in plain words, so that "token ok / permission missing / mailbox
outside scope / accepted with request-id" can be read off without a log, and which proxy (if any)
each of the two hosts is reached through. The secret, the key, the token and a proxy's
credentials are never printed. Exit status: 0 accepted, 1 a step failed, 2 configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TextIO

from ulid import ULID

from mxrelay.cli.common import EXIT_CONFIG, load_or_exit
from mxrelay.config import Settings, graph_settings_problem
from mxrelay.delivery import DeliveryError, DeliveryJob, UpstreamUnavailable
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.graph.auth import MsalTokenSource, authority_url
from mxrelay.delivery.graph.credentials import TlsTrust, load_credential
from mxrelay.delivery.graph.outcome import GraphConfigurationFault
from mxrelay.delivery.graph.pacing import Pacer, PacingLimits
from mxrelay.delivery.graph.prepare import message_id_for
from mxrelay.delivery.graph.proxy import OutboundProxy, ProxyProblem
from mxrelay.log import printable
from mxrelay.model import GraphFault

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "graph-test",
        help="send one test message through Microsoft Graph and say what happened",
        description="Acquire a token with the configured app registration, check its "
        "permissions and send one small message through Microsoft Graph, printing the result "
        "of each step. Exit status: 0 accepted, 1 a step failed, 2 configuration error.",
    )
    parser.add_argument("--to", required=True, metavar="ADDRESS", help="recipient of the test")
    parser.add_argument(
        "--from",
        dest="sender",
        metavar="MAILBOX",
        help="sending mailbox (default: MXRELAY_GRAPH_MAILBOX)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    settings = load_or_exit(environ)
    problem = graph_settings_problem(settings.graph)
    if problem:
        sys.stderr.write(f"mxrelay: configuration error: {problem}\n")
        return EXIT_CONFIG
    if "@" not in args.to:
        sys.stderr.write(f"mxrelay: --to {args.to!r} is not an email address\n")
        return EXIT_CONFIG
    mailbox = args.sender or settings.graph.mailbox
    if not mailbox:
        sys.stderr.write(
            "mxrelay: no sending mailbox: pass --from MAILBOX or set MXRELAY_GRAPH_MAILBOX\n"
        )
        return EXIT_CONFIG
    try:
        OutboundProxy.from_environ(environ)
    except ProxyProblem as problem:
        sys.stderr.write(f"mxrelay: configuration error: {problem}\n")
        return EXIT_CONFIG
    # The steps say everything in words; without this, Python's last-resort handler would
    # repeat the transport's bare event names on stderr.
    logging.getLogger("mxrelay").addHandler(logging.NullHandler())
    return asyncio.run(graph_test(settings, environ, to=args.to, mailbox=mailbox, out=sys.stdout))


async def graph_test(
    settings: Settings, environ: Mapping[str, str], *, to: str, mailbox: str, out: TextIO
) -> int:
    """The steps, each printed as `step: result`; returns the exit status."""
    graph = settings.graph
    say = _printer(out)
    proxy = OutboundProxy.from_environ(environ)
    say("identity platform", f"{authority_url(graph)} (client id {graph.client_id})")
    say("identity platform route", proxy.route(graph.authority).describe())
    say("graph", graph.endpoint)
    say("graph route", proxy.route(graph.endpoint).describe())
    try:
        credential = load_credential(graph, environ)
    except GraphConfigurationFault as fault:
        say("credential", f"FAILED: {fault.detail}")
        return EXIT_FAILED
    if credential.kind == "certificate":
        expiry = f", valid until {credential.not_after:%Y-%m-%d}" if credential.not_after else ""
        say("credential", f"certificate, SHA-1 thumbprint {credential.thumbprint}{expiry}")
    else:
        say("credential", "client secret")
    tokens = MsalTokenSource(graph, environ=environ, proxy=proxy)
    try:
        token = await tokens.token()
    except (GraphConfigurationFault, UpstreamUnavailable) as error:
        say("token", f"FAILED: {error.detail}")
        await tokens.aclose()
        return EXIT_FAILED
    say("token", f"ok (valid for {max(token.expires_in // 60, 0)} more minutes)")
    roles = token.roles()
    if roles is None:
        say("permissions", "cannot be read from the token; trying to send anyway")
    elif "Mail.Send" in roles:
        say("permissions", "Mail.Send granted")
    else:
        say(
            "permissions",
            "permission missing: the token carries no Mail.Send application role; add the "
            "Microsoft Graph application permission Mail.Send and grant admin consent",
        )
        await tokens.aclose()
        return EXIT_FAILED
    say("sending mailbox", mailbox)
    single = settings.model_copy(
        update={"graph": graph.model_copy(update={"mailbox": mailbox, "allowed_senders": ()})}
    )
    transport = GraphTransport(
        single,
        tokens=tokens,
        trust=TlsTrust.from_environ(environ),
        proxy=proxy,
        pacer=Pacer(PacingLimits.off()),
    )
    try:
        outcome = await transport.deliver(_job(settings, mailbox, to))
    except GraphConfigurationFault as fault:
        say("send", _fault_words(fault, mailbox))
        return EXIT_FAILED
    except DeliveryError as error:
        say("send", f"FAILED: {error.detail}{_reference(error)}")
        return EXIT_FAILED
    finally:
        await transport.aclose()
    say(
        "send",
        f"accepted by Microsoft Graph (HTTP {outcome.http_status}, request-id "
        f"{outcome.remote_id or 'not given'}); Exchange now delivers it to {to}, and any bounce "
        f"goes to {mailbox}",
    )
    return 0


def _job(settings: Settings, mailbox: str, to: str) -> DeliveryJob:
    now = datetime.now(UTC)
    stored_id = str(ULID.from_datetime(now))
    hostname = settings.service.hostname
    lines = [
        f"From: {mailbox}",
        f"To: {to}",
        "Subject: mxrelay graph-test",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id_for(stored_id, hostname)}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"This test message was sent by `mxrelay graph-test` on {hostname} through Microsoft "
        "Graph. It needs no answer.",
        "",
    ]
    data = "\r\n".join(lines).encode("utf-8")
    return DeliveryJob(stored_id, 0, mailbox, (to,), data, received_at=now)


def _fault_words(fault: GraphConfigurationFault, mailbox: str) -> str:
    if fault.fault is GraphFault.ACCESS_DENIED:
        return (
            f"mailbox outside scope: the app holds Mail.Send, but Exchange does not let it send "
            f"as {mailbox}; add the mailbox to the app's RBAC for Applications management scope "
            "(or its application access policy); changes take up to 2 hours" + _reference(fault)
        )
    if fault.fault is GraphFault.MAILBOX:
        return (
            f"mailbox not found: {mailbox} does not exist or has no Exchange Online mailbox"
            + _reference(fault)
        )
    return f"FAILED: {fault.detail}{_reference(fault)}"


def _reference(error: DeliveryError) -> str:
    parts = [
        f"HTTP {error.code}" if error.code else "",
        error.error_code or "",
        f"request-id {error.remote_id}" if error.remote_id else "",
    ]
    shown = ", ".join(part for part in parts if part)
    return f" ({shown})" if shown else ""


def _printer(out: TextIO) -> Callable[[str, str], None]:
    def say(step: str, result: str) -> None:
        out.write(f"{step}: {printable(result)}\n")  # results quote what the services answered
        out.flush()

    return say
