"""SMTP engine: aiosmtpd against mxrelay's own engine, same smtp-source load, same process, uvloop.

The engine's module docstring (src/mxrelay/smtp/server.py) gives the reason mxrelay does not build
on aiosmtpd: under Postfix's smtp-source an aiosmtpd sink accepts far fewer messages per second than
an asyncio-protocol engine. This measures both side by side in one run: a minimal aiosmtpd handler
answering 250 to DATA (its default RCPT handling accepts everyone), and `SmtpServer` with a
`RelayPolicy` whose recipient check accepts and whose sink discards. Both listen on 127.0.0.1 on one
uvloop event loop in this process; smtp-source runs as a child and the runs alternate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from typing import Any

import uvloop
from aiosmtpd.smtp import SMTP

from bench.figures import Row, format_table, ratio_line
from bench.rig import LOOPBACK, RigError, SourceLoad, require_programs
from mxrelay.config import load_settings
from mxrelay.metrics import Metrics
from mxrelay.model import (
    MailParams,
    Reason,
    RecipientVerdict,
    RefusedRecipient,
    Reply,
    SessionInfo,
    Transaction,
)
from mxrelay.smtp import replies
from mxrelay.smtp.hooks import SmtpLimits
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.smtp.server import SmtpServer
from mxrelay.smtp.sink import SinkTransaction

MESSAGES = 10_000
SESSIONS = 20
RUNS = 3
WARM_UP = 500
RUN_TIMEOUT = 300.0
HOSTNAME = "engine.bench.example.net"
DISCARDED = Reply(250, "0.0", "Ok: discarded")


class AcceptAll:
    """The smallest aiosmtpd handler: the message is taken and dropped."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok: discarded"


async def accept(path: str, smtputf8: bool) -> RecipientVerdict:
    """A recipient check that accepts everyone, without DNS."""
    return RecipientVerdict(replies.RECIPIENT_OK, Reason.OK, mailbox=path.strip("<>"))


class DiscardTransaction:
    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        return replies.RECIPIENT_OK

    async def finish(self, transaction: Transaction) -> Reply:
        return DISCARDED

    async def abort(self) -> None:
        return None


class DiscardSink:
    """A sink that takes every transaction and keeps nothing."""

    def begin(self, session: SessionInfo, mail_from: str, params: MailParams) -> SinkTransaction:
        return DiscardTransaction()

    async def record_refusal(
        self, session: SessionInfo, mail_from: str, refused: RefusedRecipient
    ) -> None:
        return None


def run() -> None:
    require_programs("smtp-source")
    print(uvloop.run(compare()), flush=True)


async def compare(
    *,
    messages: int = MESSAGES,
    sessions: int = SESSIONS,
    runs: int = RUNS,
    warm_up: int = WARM_UP,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
) -> str:
    """Serve both engines on this loop, drive each with smtp-source in turn; the table."""
    loop = asyncio.get_running_loop()
    aiosmtpd = await loop.create_server(
        lambda: SMTP(AcceptAll(), hostname=HOSTNAME, loop=loop), LOOPBACK, 0, backlog=1024
    )
    metrics = Metrics()
    engine = SmtpServer(
        hostname=HOSTNAME,
        limits=SmtpLimits.from_settings(load_settings({}).smtp),
        policy=RelayPolicy(
            allowed_clients=(ipaddress.ip_network("127.0.0.0/8"),),
            check=accept,
            sink=DiscardSink(),
            metrics=metrics,
        ),
        metrics=metrics,
    )
    try:
        await engine.start(LOOPBACK, 0)
        targets = (
            ("aiosmtpd, handler answers 250", aiosmtpd.sockets[0].getsockname()[1]),
            ("mxrelay SmtpServer + RelayPolicy", engine.sockets[0][1]),
        )
        for _, port in targets:
            await _smtp_source(SourceLoad(warm_up, sessions), port, clock)
        load = SourceLoad(messages, sessions)
        rates: dict[str, list[float]] = {label: [] for label, _ in targets}
        cpu_ms: dict[str, list[float]] = {label: [] for label, _ in targets}
        for _ in range(runs):
            for label, port in targets:
                cpu_before = cpu_clock()
                rates[label].append(load.messages / await _smtp_source(load, port, clock))
                cpu_ms[label].append((cpu_clock() - cpu_before) * 1000 / load.messages)
    finally:
        aiosmtpd.close()
        await aiosmtpd.wait_closed()
        await engine.stop(grace=5.0)
    peer, ours = (Row(label, tuple(rates[label])) for label, _ in targets)
    peer_cpu, our_cpu = (Row(label, tuple(cpu_ms[label])) for label, _ in targets)
    title = (
        f"smtp engine: {messages} messages of {load.size} bytes from smtp-source, "
        f"{sessions} sessions, {type(loop).__module__.split('.')[0]} loop, median of {runs}"
    )
    cpu_title = "smtp engine: CPU time of the server process per message"
    rate_ratio = ratio_line("mxrelay / aiosmtpd", ours, peer)
    cpu_ratio = ratio_line("aiosmtpd / mxrelay", peer_cpu, our_cpu)
    return "\n\n".join(
        [
            format_table(title, "messages/s", [peer, ours], [rate_ratio]),
            format_table(
                cpu_title, "ms/message, lower is better", [peer_cpu, our_cpu], [cpu_ratio]
            ),
        ]
    )


async def _smtp_source(load: SourceLoad, port: int, clock: Callable[[], float]) -> float:
    """Seconds smtp-source took to send `load` to 127.0.0.1:port; RigError if it failed."""
    started = clock()
    process = await asyncio.create_subprocess_exec(
        *load.argv(LOOPBACK, port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    elapsed = clock() - started
    if process.returncode != 0:
        raise RigError(f"smtp-source exited with {process.returncode}: {output.decode().strip()}")
    return elapsed
