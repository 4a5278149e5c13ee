"""Start real programs for system tests (mxrelay serve, Postfix's smtp-sink) and stop them by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with status {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


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

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
