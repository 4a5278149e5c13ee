"""A throw-away PostgreSQL cluster for tests, from Debian's `postgresql` package binaries.

`PostgresServer` runs `initdb` and `postgres` in a temporary directory on 127.0.0.1 and a free port
(as the `postgres` system user when the tests run as root, since PostgreSQL refuses to run as root).
The `postgres_server` fixture starts one cluster per test run, builds a template database by running
the store's migrations once, and `database_url` clones it per test (`CREATE DATABASE ... TEMPLATE`),
as procrastinate's test suite does. Missing binaries fail the tests loudly: `make test` installs the
package when it runs as root.

`db` opens the store at `database_url` for the test. The root conftest loads this module as a
plugin, so every package shares the one cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mxrelay.store.backend import Database
from mxrelay.store.open import open_store
from tests.support.polling import eventually
from tests.support.processes import free_port

POSTGRES_ROOT = Path("/usr/lib/postgresql")
TEMPLATE = "mxrelay_template"
START_TIMEOUT = 30.0
_counter = itertools.count()


def find_bin_dir() -> Path:
    versions = sorted(
        (p for p in POSTGRES_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install the "
            "Debian package `postgresql` (make test does so when run as root)",
            pytrace=False,
        )
    return versions[-1]


class PostgresServer:
    """One cluster in a temporary directory; `start()`/`stop()` may be called repeatedly."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = find_bin_dir()
        self.tmp = Path(tempfile.mkdtemp(prefix="mxrelay-pg-"))
        self.data = self.tmp / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.durable = durable
        self._as_root = os.geteuid() == 0
        self._proc: subprocess.Popen[bytes] | None = None
        if self._as_root:
            account = pwd.getpwnam("postgres")
            os.chown(self.tmp, account.pw_uid, account.pw_gid)
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust"]
        self._run([*initdb, "--no-sync"])

    def _command(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_root else argv

    def _run(self, argv: list[str]) -> None:
        subprocess.run(
            self._command(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        options = [
            "-c", f"listen_addresses={self.host}",
            "-c", f"port={self.port}",
            "-c", f"unix_socket_directories={self.tmp}",
            "-c", "max_connections=200",
        ]  # fmt: skip
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            options += ["-c", "full_page_writes=off"]
        log = open(self.tmp / "server.log", "ab")  # noqa: SIM115 (kept open for the process)
        self._proc = subprocess.Popen(
            self._command([str(self.bin / "postgres"), "-D", str(self.data), *options]),
            stdout=log,
            stderr=log,
        )
        log.close()
        eventually(self._accepts, what="postgres accepts connections", within=START_TIMEOUT)

    def _accepts(self) -> bool:
        """Whether the server answers; it must not have exited."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"postgres exited: {(self.tmp / 'server.log').read_text()}")
        return self._pg_isready()

    def _pg_isready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", self.user],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected)."""
        if self._proc is None:
            return
        self._pg_ctl_stop("fast")
        try:
            self._proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=START_TIMEOUT)
        self._proc = None

    def kill(self) -> None:
        """Stop the server abruptly (immediate mode: no shutdown checkpoint, like a crash)."""
        if self._proc is None:
            return
        self._pg_ctl_stop("immediate")
        self._proc.wait(timeout=START_TIMEOUT)
        self._proc = None

    def _pg_ctl_stop(self, mode: str) -> None:
        # Asked of the server itself: `runuser` stands between us and the postgres process when
        # the tests run as root.
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
        subprocess.run(
            self._command(pg_ctl), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def sql(self, statement: str, database: str = "postgres") -> str:
        argv = [str(self.bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user]
        argv += ["-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", statement]
        result = subprocess.run(
            argv,
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def build_template(server: PostgresServer) -> None:
    server.sql(f"CREATE DATABASE {TEMPLATE}")

    async def migrate() -> None:
        async with open_store(server.url(TEMPLATE)):
            pass

    asyncio.run(migrate())


def clone(server: PostgresServer) -> str:
    name = f"mxrelay_test_{os.getpid()}_{next(_counter)}"
    server.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
    return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the test run, with the migrated template database."""
    server = PostgresServer()
    try:
        server.start()
        build_template(server)
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated database cloned from the template; dropped afterwards."""
    name = clone(postgres_server)
    yield postgres_server.url(name)
    postgres_server.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store contract test runs on both SQLite (a fresh file) and PostgreSQL (a clone)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The store at `database_url`, open for the test."""
    async with open_store(database_url) as database:
        yield database
