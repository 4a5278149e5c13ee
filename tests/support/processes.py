"""Start real programs for system tests (mxrelay serve, Postfix's smtp-sink) and stop them by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.polling import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_mxrelay(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`mxrelay ARGV...` as a command to completion (at most 60 s), with only `env` and PATH."""
    return subprocess.run(
        [sys.executable, "-m", "mxrelay", *argv],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for_port(
    port: int, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until something listens on 127.0.0.1:`port`; `process` (the one that should) must not
    exit meanwhile."""

    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with status {process.returncode} before listening")
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    eventually(
        listening,
        what=f"something listens on 127.0.0.1:{port}",
        within=timeout,
        interval=0.05,
        ignoring=(OSError,),
    )


@contextmanager
def smtp_sink() -> Iterator[tuple[int, Path]]:
    """Postfix's smtp-sink on a free port, dumping each transaction into a directory of its own.

    smtp-sink drops privileges to `nobody` when started as root, so the directory is made under
    the system temporary directory (every parent traversable), not under pytest's private one.
    """
    dump_dir = Path(tempfile.mkdtemp(prefix="mxrelay-sink-"))
    dump_dir.chmod(0o777)
    port = free_port()
    command = ["smtp-sink", "-d", f"{dump_dir}/%H%M%S.", f"127.0.0.1:{port}", "64"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield port, dump_dir
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(dump_dir, ignore_errors=True)


def wait_for_exit(pid: int, timeout: float = 30.0) -> bool:
    """Until process `pid` (not ours to reap) is gone, for at most `timeout` seconds; then SIGKILL
    it and wait as long again. True if it is gone."""
    for kill in (False, True):
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):  # still there: killed, or reported
            eventually(lambda: not _alive(pid), what=f"process {pid} exits", within=timeout)
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


class ServeProcess:
    """`mxrelay serve` as a child process; its log lines are kept for assertions."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.smtp_port = free_port()
        self.metrics_port = free_port()
        full_env = {
            "PATH": os.environ["PATH"],
            "MXRELAY_SMTP_LISTEN": f"127.0.0.1:{self.smtp_port}",
            "MXRELAY_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "MXRELAY_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "MXRELAY_HOSTNAME": "relay.example.net",
            **env,
        }
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mxrelay", "serve"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.smtp_port, process=self.process)

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def children(self) -> list[int]:
        """PIDs of the relay's own child processes (its delivery process), while it runs."""
        pid = self.process.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        children = self.children()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in children:  # a delivery process stops by itself once the relay is gone
            wait_for_exit(pid)
        self._log.close()

    @classmethod
    async def start(cls, env: dict[str, str], log_path: Path) -> ServeProcess:
        """Started off the event loop (it waits for the SMTP port)."""
        return await asyncio.to_thread(cls, env, log_path)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
