"""Hostile messages and the yardstick for them: other work proceeds, memory stays bounded.

`BOMBS` are messages that made the parsers of earlier versions take seconds, gigabytes, or a
`RecursionError` (each named for what it attacks). `watch()` runs one piece of hostile work against
a relay process while probing `/healthz` and completing an ordinary SMTP transaction beside it,
and reads the process's resident memory before and after (peak, from `/proc`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import httpx

from tests.support.processes import ServeProcess, free_port

KIB = 1024
MIB = 1024 * KIB

HEALTH_LATENCY_BOUND = 1.0
"""Seconds /healthz may take to answer while hostile work runs (it takes milliseconds when the
event loop is free; the parsers of earlier versions froze it for 5 to 20 seconds)."""

RSS_GROWTH_BOUND = 64 * MIB
"""Peak resident memory a relay may gain while handling one hostile message (earlier versions:
0.7 to 4 GB)."""

BESIDE_BOUND = 10.0
"""Seconds the ordinary transaction beside the hostile one may take (milliseconds when idle)."""

WORK_BOUND = 20.0
"""Seconds one piece of hostile work may take end to end: a DATA, a message view, delivery
attempts (earlier versions: up to minutes, or never, for the same messages)."""

WORDS = b"=?utf-8?q?a?= "


def encoded_words(size: int) -> bytes:
    """`size` bytes of RFC 2047 encoded words: quadratic for the stdlib's header parsers."""
    return WORDS * (size // len(WORDS))


def nested_multiparts(levels: int) -> bytes:
    """MIME nested `levels` deep (the stdlib parser recurses per level)."""
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"\r\n--b%d--" % i for i in reversed(range(levels)))
    return opening + b"Content-Type: text/plain\r\n\r\ninnermost" + closing + b"\r\n"


def nested_comments(depth: int) -> bytes:
    return b"(" * depth + b"x" + b")" * depth


def header_block(
    *extra: bytes, sender: bytes = b"App <app@example.net>", to: bytes = b"user@example.org"
) -> bytes:
    """An ordinary header block (no blank line after it) with `extra` fields."""
    fields = [b"From: " + sender, b"To: " + to, b"Subject: hostile", b"Message-ID: <h@example.net>"]
    return b"".join(field + b"\r\n" for field in (*fields, *extra))


def message(*extra: bytes, body: bytes = b"hello\r\n", **fields: bytes) -> bytes:
    return header_block(*extra, **fields) + b"\r\n" + body


BOMBS: dict[str, bytes] = {
    # Read by the API's message view (Content-Type and Content-Disposition parameters).
    "encoded words in a file name (137 KiB)": message(
        b'Content-Type: text/plain; name="' + encoded_words(137 * KIB) + b'"'
    ),
    "a thousand nested multiparts": header_block() + nested_multiparts(1000),
    "five thousand nested comments in Content-Type": message(
        b"Content-Type: text/plain " + nested_comments(5000)
    ),
    # Read at accept time (the summary) and by the Graph transport.
    "encoded words in From (140 KiB)": message(sender=encoded_words(140 * KIB) + b"<a@b.c>"),
    "five thousand nested comments in From": message(
        sender=nested_comments(5000) + b" app@example.net"
    ),
    "punycode as the body's charset (200 KB)": message(
        b"Content-Type: text/plain; charset=punycode", body=b"99" * 100_000 + b"\r\n"
    ),
    "a long run of letters in To (200 KB)": message(to=b"a" * 200_000),
    "a run of < in an HTML body (200 KB)": message(
        b"Content-Type: text/html", body=b"<" * 200_000 + b"\r\n"
    ),
    "sixty thousand header fields": message(*(b"X-A: a" for _ in range(60_000))),
}


@contextlib.contextmanager
def hold_relay(directory: Path) -> Iterator[tuple[ServeProcess, int]]:
    """`mxrelay serve` in hold mode on SQLite, calendar stripping on (so the transforms parse
    every message too), recipients in example.org and example.net accepted without DNS; yields
    the process and the port of its API."""
    web_port = free_port()
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{directory / 'relay.db'}",
        "MXRELAY_HTTP_LISTEN": f"127.0.0.1:{web_port}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.org,example.net",
        "MXRELAY_ICS_STRIP": "all",
        "MXRELAY_LOG_LEVEL": "warning",
        "MXRELAY_STORE_COMMIT_WINDOW": "0s",
    }
    process = ServeProcess(env, directory / "relay.log")
    try:
        yield process, web_port
    finally:
        process.close()


def reset_peak(pid: int) -> None:
    """Start the peak resident memory (VmHWM) afresh (Linux `clear_refs`, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def memory(pid: int, field: str) -> int:
    """`VmRSS` (now) or `VmHWM` (the peak so far) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * KIB
    raise LookupError(field)


@dataclass(frozen=True)
class Watched:
    result: object
    seconds: float
    """How long the hostile work took."""
    health_latency: float
    """The slowest /healthz answer while it ran (and at least one probe was made)."""
    beside: str
    """The reply to the ordinary SMTP transaction run beside it."""
    beside_seconds: float
    rss_growth: int
    """Peak resident memory during the work minus resident memory before it, in bytes."""


async def ordinary_transaction(smtp_port: int, sender: str | None) -> tuple[str, float]:
    """One small message from `sender` (nothing when None): the reply and how long it took."""
    if sender is None:
        return "250 (none sent)", 0.0
    started = time.monotonic()
    data = f"From: {sender}\r\nTo: user@example.org\r\nSubject: ordinary\r\n\r\nhi\r\n"
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, timeout=60) as client:
        _, reply = await client.sendmail(sender, ["user@example.org"], data.encode())
    return f"250 {reply}", time.monotonic() - started


async def watch(
    work: Awaitable[object], relay: ServeProcess, *, sender: str | None = "app@example.net"
) -> Watched:
    """Run `work` while probing the relay's /healthz every 50 ms and sending it one ordinary
    message from `sender` (none when None); assert that all of it stayed within the bounds."""
    watched = await _watch(work, relay.process.pid, relay.metrics_port, relay.smtp_port, sender)
    assert watched.seconds < WORK_BOUND, watched
    assert watched.health_latency < HEALTH_LATENCY_BOUND, watched
    assert watched.beside.startswith("250 "), watched
    assert watched.beside_seconds < BESIDE_BOUND, watched
    assert watched.rss_growth < RSS_GROWTH_BOUND, watched
    return watched


async def _watch(
    work: Awaitable[object], pid: int, metrics_port: int, smtp_port: int, sender: str | None
) -> Watched:
    reset_peak(pid)
    before = memory(pid, "VmRSS")
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    beside = asyncio.ensure_future(ordinary_transaction(smtp_port, sender))
    slowest = 0.0
    probes = 0
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            while probes == 0 or not (task.done() and beside.done()):
                probe = time.monotonic()
                answer = await client.get(f"http://127.0.0.1:{metrics_port}/healthz")
                assert answer.status_code == 200
                slowest = max(slowest, time.monotonic() - probe)
                probes += 1
                if probes > 2400:  # two minutes of probes: the work is stuck
                    break
                await asyncio.sleep(0.05)
        result = await task
        seconds = time.monotonic() - started
        reply, beside_seconds = await beside
    finally:
        for pending in (task, beside):
            pending.cancel()
        await asyncio.gather(task, beside, return_exceptions=True)
    return Watched(
        result,
        seconds,
        slowest,
        reply,
        beside_seconds,
        memory(pid, "VmHWM") - before,
    )
