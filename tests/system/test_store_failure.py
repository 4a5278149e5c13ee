"""A failing store never gets a 250: `mxrelay serve` answers `451 4.3.0`, turns /readyz red, and
accepts again once the store is back. The full disk and the read-only file are a real small
filesystem (tmpfs, mounted by the test: needs root, as CI and `make test` run); PostgreSQL is a
throw-away cluster that the test stops and starts. A message no store can hold as it is (NUL bytes,
lone surrogates from its charsets) is stored with replacement characters, and never costs the
messages that share its commit their 250, nor the relay its readiness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from tests.support.polling import until
from tests.support.postgres import PostgresServer, build_template, clone
from tests.support.processes import ServeProcess, run_mxrelay

QUEUED_AS = re.compile(r"queued as (\w+)")
STORE_FAILED = "451 4.3.0 Error: queue file write error, try again later"


def hold_env(database_url: str) -> dict[str, str]:
    return {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": database_url,
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.org",
        "MXRELAY_LOG_LEVEL": "warning",
        "MXRELAY_STORE_COMMIT_WINDOW": "0s",
    }


def message(size: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return b"From: app@example.net\r\nTo: user@example.org\r\nSubject: s\r\n\r\n" + body


async def send(port: int, size: int = 2048) -> str:
    """One message; the reply as "code enhanced text" (never raises on a 4xx)."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as client:
        try:
            _, reply = await client.sendmail("app@example.net", ["user@example.org"], message(size))
        except aiosmtplib.SMTPDataError as exc:
            return f"{exc.code} {exc.message}"
        return f"250 {reply}"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError:
        return False


def mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def small_filesystem(size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI and make test run as root)")
    with tempfile.TemporaryDirectory(prefix="mxrelay-small-") as directory:
        path = Path(directory)
        mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        try:
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


async def ids_in_store(env: dict[str, str]) -> str:
    result = await asyncio.to_thread(run_mxrelay, "queue", "list", "--limit", "100000", env=env)
    return result.stdout


@pytest.mark.slow
async def test_full_disk_then_room_again(workdir: Path) -> None:
    with small_filesystem("3m") as small:
        env = hold_env(f"sqlite:///{small / 'relay.db'}")
        relay = await ServeProcess.start(env, workdir / "relay.log")
        try:
            replies = []
            for _ in range(200):  # bounded: 3 MB fill up long before
                replies.append(await send(relay.smtp_port, size=64 * 1024))
                if replies[-1].startswith("451"):
                    break
            assert replies[-1] == STORE_FAILED
            assert all(r.startswith("250 ") or r == STORE_FAILED for r in replies)
            assert not ready(relay.metrics_port)
            mount("-o", "remount,size=64m", str(small))
            assert (await send(relay.smtp_port)).startswith("250 ")
            assert ready(relay.metrics_port)
            listed = await ids_in_store(env)
            for reply in replies:
                if reply.startswith("250 "):
                    queue_id = QUEUED_AS.search(reply)
                    assert queue_id is not None
                    assert queue_id.group(1) in listed  # every 250 is in the store
        finally:
            relay.close()


@pytest.mark.slow
async def test_read_only_store_is_refused_at_start(workdir: Path) -> None:
    """A store that cannot be written is not opened (a running relay keeps its open files, so a
    read-only remount cannot happen under it; full disks and PostgreSQL outages are the runtime
    failures, above and below)."""
    with small_filesystem("64m") as small:
        env = hold_env(f"sqlite:///{small / 'relay.db'}")
        relay = await ServeProcess.start(env, workdir / "first.log")
        assert (await send(relay.smtp_port)).startswith("250 ")
        assert await asyncio.to_thread(relay.terminate) == 0
        relay.close()
        mount("-o", "remount,ro", str(small))
        result = await asyncio.to_thread(
            run_mxrelay, "serve", env={**env, "MXRELAY_SMTP_LISTEN": "127.0.0.1:0"}
        )
        assert result.returncode == 1
        assert "mxrelay: cannot start:" in result.stderr
        assert "store" in result.stderr
        mount("-o", "remount,rw", str(small))
        relay = await ServeProcess.start(env, workdir / "second.log")
        try:
            assert (await send(relay.smtp_port)).startswith("250 ")
        finally:
            relay.close()


@pytest.mark.slow
@pytest.mark.postgres
async def test_postgresql_stopped_then_back(workdir: Path) -> None:
    server = await asyncio.to_thread(PostgresServer)
    try:
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(build_template, server)
        url = server.url(await asyncio.to_thread(clone, server))
        relay = await ServeProcess.start(hold_env(url), workdir / "relay.log")
        try:
            assert (await send(relay.smtp_port)).startswith("250 ")
            await asyncio.to_thread(server.kill)
            assert await send(relay.smtp_port) == STORE_FAILED
            assert not ready(relay.metrics_port)
            await asyncio.to_thread(server.start)
            replies = [await send(relay.smtp_port) for _ in range(3)]
            assert replies[-1].startswith("250 ")
            assert all(r.startswith("250 ") or r == STORE_FAILED for r in replies)
            assert ready(relay.metrics_port)
        finally:
            relay.close()
    finally:
        await asyncio.to_thread(server.close)


HOSTILE: dict[str, tuple[str, str, bytes]] = {
    # kind: (MAIL FROM path, a recipient to refuse or "", the message)
    "utf-7 body": (
        "<app@example.net>",
        "",
        b"From: app@example.net\r\nSubject: utf-7\r\nContent-Type: text/plain; charset=utf-7"
        b"\r\n\r\n+2D0- lone surrogate\r\n",
    ),
    "unicode_escape body": (
        "<app@example.net>",
        "",
        b"From: app@example.net\r\nSubject: escape\r\n"
        b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\ud800 lone\r\n",
    ),
    "RFC 2047 word": (
        "<app@example.net>",
        "",
        b"From: app@example.net\r\nSubject: =?utf-7?Q?+2D0-?=\r\n\r\nbody\r\n",
    ),
    "NUL in subject and From": (
        "<app@example.net>",
        "",
        b"From: a\x00b@example.net\r\nSubject: a\x00b\r\n\r\nbody\x00text\r\n",
    ),
    "NUL in sender": ('<"a\x00b"@example.net>', "", b"From: app@example.net\r\n\r\nbody\r\n"),
    "NUL in refused recipient": (
        "<app@example.net>",
        "<x\x00y@example.invalid>",
        b"From: app@example.net\r\nSubject: refused\r\n\r\nbody\r\n",
    ),
}


async def reply_of(reader: asyncio.StreamReader) -> str:
    """One SMTP reply, multi-line included, as "code text" of its last line."""
    while True:
        line = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 4 or line[3] != "-":
            return line


async def send_raw(port: int, sender: str, refused: str, data: bytes) -> str:
    """One transaction written byte for byte (client libraries refuse control characters in a
    path): the reply to DATA's end, or the MAIL reply if MAIL was refused."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(60):
            assert (await reply_of(reader)).startswith("220 ")

            async def command(line: bytes) -> str:
                writer.write(line + b"\r\n")
                return await reply_of(reader)

            assert (await command(b"EHLO client.example.net")).startswith("250 ")
            reply = await command(b"MAIL FROM:" + sender.encode())
            if not reply.startswith("250 "):
                return reply
            if refused:
                assert (await command(b"RCPT TO:" + refused.encode()))[:1] == "5"
            assert (await command(b"RCPT TO:<user@example.org>")).startswith("250 ")
            assert (await command(b"DATA")).startswith("354 ")
            return await command(data + b".")
    finally:
        writer.close()


@pytest.mark.slow
async def test_hostile_text_never_fails_the_messages_it_shares_a_commit_with(
    workdir: Path, database_url: str
) -> None:
    env = {**hold_env(database_url), "MXRELAY_STORE_COMMIT_WINDOW": "5ms"}
    relay = await ServeProcess.start(env, workdir / "relay.log")
    try:
        # 40 sessions at once, every fourth hostile: the commits they share mix both kinds.
        kinds = [list(HOSTILE)[n // 4 % len(HOSTILE)] if n % 4 == 0 else "" for n in range(40)]
        replies = await asyncio.gather(
            *(
                send_raw(relay.smtp_port, *HOSTILE[kind]) if kind else send(relay.smtp_port)
                for kind in kinds
            )
        )
        good = [reply for kind, reply in zip(kinds, replies, strict=True) if not kind]
        assert all(r.startswith("250 ") for r in good), good
        for kind, reply in zip(kinds, replies, strict=True):
            if not kind:
                continue
            # stored with replacement characters; a sender with a NUL may be refused at MAIL
            assert reply.startswith("250 ") or (
                kind == "NUL in sender" and reply.startswith("501 ")
            ), (kind, reply)
        assert ready(relay.metrics_port)
        stored = [r for r in replies if r.startswith("250 ")]
        listed = await ids_in_store(env)
        for reply in stored:
            queue_id = QUEUED_AS.search(reply)
            assert queue_id is not None
            assert queue_id.group(1) in listed
        assert "store commit" not in relay.log
    finally:
        relay.close()


@pytest.mark.slow
async def test_a_deleted_sqlite_file_is_noticed(workdir: Path) -> None:
    """Deleted under a running relay, the file would take messages into an unlinked inode, gone
    at the next restart: the relay answers 451 instead, and turns /readyz red."""
    database = workdir / "relay.db"
    relay = await ServeProcess.start(hold_env(f"sqlite:///{database}"), workdir / "relay.log")
    try:
        assert (await send(relay.smtp_port)).startswith("250 ")
        database.unlink()
        assert await send(relay.smtp_port) == STORE_FAILED
        assert not ready(relay.metrics_port)
        assert "was deleted or replaced" in relay.log
    finally:
        relay.close()


async def ready_becomes(port: int, expected: bool, within: float) -> None:
    """Until /readyz is `expected` (looked at every 0.2 s), at most `within` seconds."""

    async def answers() -> bool:
        return await asyncio.to_thread(ready, port) == expected

    await until(answers, what=f"/readyz ready={expected}", within=within, interval=0.2)


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_read_only_postgresql_is_noticed_and_recovered_without_traffic(
    workdir: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """As after a fail-over that left the relay on a standby: /readyz turns red before any
    message needs the store, and green again once it takes writes, with no message sent."""
    name = postgres_url.rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        value = "SET default_transaction_read_only = on" if on else "RESET ALL"
        postgres_server.sql(f"ALTER DATABASE {name} {value}")
        postgres_server.sql(  # sessions keep what they began with: end them
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )

    relay = await ServeProcess.start(hold_env(postgres_url), workdir / "relay.log")
    try:
        assert (await send(relay.smtp_port)).startswith("250 ")
        assert ready(relay.metrics_port)
        await asyncio.to_thread(read_only, True)
        await ready_becomes(relay.metrics_port, False, within=30)
        await asyncio.to_thread(read_only, False)
        await ready_becomes(relay.metrics_port, True, within=30)
        assert (await send(relay.smtp_port)).startswith("250 ")
    finally:
        relay.close()
