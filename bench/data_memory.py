"""Data memory: many large messages at once, with MXRELAY_SMTP_DATA_MEMORY_LIMIT and without.

`mxrelay serve` in hold mode (SQLite in a temporary directory, recipients in a trusted domain, so
no DNS) on free loopback ports; 20 sessions each send a 24 MiB message at the same time. Printed
for the default budget and for one too large to matter (what the relay did before it had one):
the replies by code, the wall time, and the process's VmRSS before and its peak (VmHWM) after.
Needs nothing but this machine; takes under a minute.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.figures import format_facts, status_bytes
from bench.rig import LOOPBACK, RigError

SESSIONS = 20
MESSAGE_MIB = 24
CONFIGURATIONS = (("default budget (64MiB)", None), ("no budget (as before: 4GiB)", "4GiB"))
START_TIMEOUT = 30.0
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Result:
    replies: dict[str, int]
    seconds: float
    rss_before: int
    peak: int


def run() -> None:
    data = message(MESSAGE_MIB * MIB)
    for label, limit in CONFIGURATIONS:
        result = measure(data, limit)
        replies = ", ".join(f"{code}: {n}" for code, n in sorted(result.replies.items()))
        facts = [
            ("replies by code", replies),
            ("duration", f"{result.seconds:.1f} s"),
            (
                "VmRSS before, VmHWM after",
                f"{result.rss_before / MIB:.0f} MiB, {result.peak / MIB:.0f} MiB",
            ),
        ]
        title = f"data memory: {SESSIONS} sessions × {MESSAGE_MIB} MiB at once, hold mode, {label}"
        print(format_facts(title, facts), flush=True)


def message(size: int) -> bytes:
    line = b"x" * 998 + b"\r\n"
    return b"Subject: large\r\n\r\n" + line * (size // len(line))


def measure(data: bytes, limit: str | None) -> Result:
    with tempfile.TemporaryDirectory(prefix="mxrelay-bench-") as directory:
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "MXRELAY_SMTP_LISTEN": f"{LOOPBACK}:{port}",
            "MXRELAY_METRICS_LISTEN": f"{LOOPBACK}:{_free_port()}",
            "MXRELAY_HTTP_LISTEN": f"{LOOPBACK}:{_free_port()}",
            "MXRELAY_HOSTNAME": "relay.bench.example.net",
            "MXRELAY_DATABASE_URL": f"sqlite:///{Path(directory) / 'mxrelay.db'}",
            "MXRELAY_DNS_TRUSTED_DOMAINS": "bench.example.net",
            "MXRELAY_LOG_LEVEL": "warning",
        }
        if limit is not None:
            env["MXRELAY_SMTP_DATA_MEMORY_LIMIT"] = limit
        relay = subprocess.Popen([sys.executable, "-m", "mxrelay", "serve"], env=env)
        try:
            _wait_for_port(port, relay)
            status = Path(f"/proc/{relay.pid}/status")
            before = status_bytes(status.read_text())
            started = time.monotonic()
            replies = asyncio.run(_sessions(port, data))
            seconds = time.monotonic() - started
            peak = status_bytes(status.read_text(), "VmHWM")
        finally:
            relay.terminate()
            relay.wait(30)
    return Result(dict(replies), seconds, before, peak)


async def _sessions(port: int, data: bytes) -> collections.Counter[str]:
    replies: collections.Counter[str] = collections.Counter()
    async with asyncio.timeout(300):
        await asyncio.gather(*(_session(port, data, replies) for _ in range(SESSIONS)))
    return replies


async def _session(port: int, data: bytes, replies: collections.Counter[str]) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)

    async def reply() -> str:
        while True:
            line = await reader.readline()
            if not line:
                raise RigError("mxrelay closed the connection")
            if line[3:4] != b"-":
                return line[:3].decode()

    try:
        await reply()
        for command in (b"EHLO bench.example.net", b"MAIL FROM:<a@bench.example.net>"):
            writer.write(command + b"\r\n")
            await reply()
        writer.write(b"RCPT TO:<b@bench.example.net>\r\nDATA\r\n")
        await reply()
        await reply()
        writer.write(data + b".\r\n")
        replies[await reply()] += 1
        writer.write(b"QUIT\r\n")
        await reply()
    finally:
        writer.close()
        await writer.wait_closed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RigError(f"mxrelay exited with status {process.returncode}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)  # polling for the listener
    raise RigError("mxrelay did not start listening")
