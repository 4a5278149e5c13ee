"""A real HTTP CONNECT proxy on loopback that records what passed through it.

The proxy is the `proxy.py` package (a test extra), run as a process of its own on 127.0.0.1, as a
corporate egress proxy would be: it tunnels CONNECT requests, optionally only with basic-auth
credentials (407 otherwise), optionally speaking TLS itself (an https:// proxy). Its debug log names every upstream as it connects to it
("Connecting to upstream HOST:PORT"), so `tunnels()` knows what went through at once, without
waiting for the tunnels to close (its access log is written only when they do).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.polling import eventually
from tests.support.processes import free_port, wait_for_port

_CONNECTING = re.compile(r"Connecting to upstream (\S+):(\d+)")


class ConnectProxy:
    """proxy.py on a free loopback port. Use `ConnectProxy.running(directory)`."""

    def __init__(
        self,
        directory: Path,
        *,
        credentials: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`credentials` as `user:password`; `tls` as (certificate file, key file)."""
        self.directory = directory
        self.credentials = credentials
        self.tls = tls
        self.port = free_port()
        self.log_file = directory / "proxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        directory: Path,
        *,
        credentials: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> Iterator[ConnectProxy]:
        proxy = cls(directory, credentials=credentials, tls=tls)
        proxy.start()
        try:
            yield proxy
        finally:
            proxy.stop()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "proxy",
            "--hostname", "127.0.0.1",
            "--port", str(self.port),
            "--num-acceptors", "1",
            "--num-workers", "1",
            "--log-level", "DEBUG",
            "--log-file", str(self.log_file),
            "--data-dir", str(self.directory / "data"),
            "--cache-dir", str(self.directory / "cache"),
        ]  # fmt: skip
        if self.credentials is not None:
            command += ["--basic-auth", self.credentials]
        if self.tls is not None:
            command += ["--cert-file", str(self.tls[0]), "--key-file", str(self.tls[1])]
        with (self.directory / "proxy.out").open("wb") as out:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, process=self._process)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()  # proxy.py stops its acceptor and worker processes on SIGTERM
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    @property
    def url(self) -> str:
        """The proxy's URL, with its credentials when it wants some."""
        userinfo = f"{self.credentials}@" if self.credentials else ""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def tunnels(self) -> list[str]:
        """`host:port` of every upstream the proxy connected to, in order."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [f"{host}:{port}" for host, port in _CONNECTING.findall(text)]

    def wait_for_tunnels(self, *expected: str, timeout: float = 10.0) -> list[str]:
        """The tunnels once each of `expected` is among them (polled: the log is another
        process's)."""

        def all_there() -> list[str] | None:
            tunnels = self.tunnels()
            return tunnels if set(expected) <= set(tunnels) else None

        return eventually(
            all_there,
            what=lambda: f"tunnels {self.tunnels()}, expected {expected}",
            within=timeout,
            interval=0.05,
        )
