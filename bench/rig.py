"""The front-door rig: a private network namespace holding a DNS server, smtp-sink, a Postfix
instance and mxrelay, each started and stopped by its PID, all removed again even when a run fails.

Postfix resolves through /etc/resolv.conf, so the rig creates a namespace (`ip netns add`) whose
`/etc/netns/NAME/resolv.conf` names a DNS server listening on 127.0.0.1:53 inside it; `ip netns
exec` bind-mounts that file for every process it starts there. The DNS server is the test suite's
(`tests/support/dns_server.py`), so tests and benchmarks share one DNS implementation. Inside the
namespace nothing else listens, so the rig uses fixed ports; the machine's own Postfix, its
configuration and its ports are never touched (the rig's Postfix has its own config, queue and data
directories under a temporary directory, chroot off, listening on the namespace's loopback only).

The smtp-source command line is here too, shared with the engine benchmark; what the benchmarks
read and print lives in `bench/figures.py`. Configuration text (zone, main.cf, master.cf, relay
environment) comes from pure functions, tested in tests/bench/.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.figures import process_tree_cpu, status_bytes

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
DNS_PORT = 53  # resolv.conf cannot name a port
POSTFIX_PORT = 2525
SINK_PORT = 2526
RELAY_PORT = 2527
METRICS_PORT = 9090

DOMAIN = "bench.example.net"
"""The recipients' domain: MX → mx.bench.example.net → 192.0.2.10 (counted as routable)."""
MX_ADDRESS = "192.0.2.10"
FLOOD_TLD = "com"
"""The DNS server is authoritative for this TLD, so every random name under it is NXDOMAIN."""

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0
_CLONE_NEWNET = 0x40000000


class Unavailable(RuntimeError):
    """This machine cannot run the benchmark (not root, a program missing); it is skipped."""


class RigError(RuntimeError):
    """A process of the rig failed; the message carries the end of its log."""


def require_programs(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise Unavailable(f"missing programs: {', '.join(missing)} (Debian: postfix, iproute2)")


def require_root() -> None:
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespaces, a private Postfix instance)")


def require_rig() -> None:
    """What `Rig` needs of the machine: root, iproute2 and Postfix's programs."""
    require_root()
    require_programs("ip", "smtp-source", "smtp-sink", "postfix")


# --- smtp-source -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceLoad:
    """An smtp-source run: one new connection per message (its default), `sessions` in parallel."""

    messages: int
    sessions: int
    size: int = 2048
    sender: str = f"sender@{DOMAIN}"
    recipient: str = f"rcpt@{DOMAIN}"

    def argv(self, host: str, port: int) -> list[str]:
        options = f"-s {self.sessions} -m {self.messages} -l {self.size} -M client.{DOMAIN}"
        return [
            "smtp-source",
            *options.split(),
            "-f",
            self.sender,
            "-t",
            self.recipient,
            f"{host}:{port}",
        ]


# --- configuration text ----------------------------------------------------------------------


def zone_text() -> str:
    """The DNS data: the bench domain with a usable MX, and a TLD where every name is NXDOMAIN."""
    soa = "1 3600 600 86400 60"  # serial refresh retry expire minimum (negative TTL 60 s)
    return (
        f"{DOMAIN}. 300 IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. {soa}\n"
        f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.\n"
        f"mx.{DOMAIN}. 300 IN A {MX_ADDRESS}\n"
        f"{FLOOD_TLD}. 300 IN SOA ns.{FLOOD_TLD}. hostmaster.{FLOOD_TLD}. {soa}\n"
    )


def postfix_main_cf(base: Path, *, listen_host: str, sink_port: int) -> str:
    """A relay: RCPT needs a resolvable domain, then mynetworks; everything goes to the sink."""
    return f"""\
compatibility_level = 3.6
queue_directory = {base / "spool"}
data_directory = {base / "data"}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.{DOMAIN}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
inet_interfaces = {listen_host}
inet_protocols = ipv4
mynetworks = {listen_host}/32
relayhost = [{listen_host}]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = reject_unknown_recipient_domain, permit_mynetworks, reject
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
maillog_file = {base / "maillog"}
maillog_file_prefixes = {base}
"""


_POSTFIX_SERVICES = """\
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
"""Postfix's internal services (type, private, unprivileged, chroot, wakeup, maxproc, command)."""


def postfix_master_cf(listen_host: str, port: int) -> str:
    """One smtpd on `listen_host:port` plus the internal services, none chrooted."""
    return f"{listen_host}:{port} inet n - n - - smtpd\n" + _POSTFIX_SERVICES


def relay_environment(
    *, upstream_port: int, extra: Mapping[str, str] | None = None, path: str = ""
) -> dict[str, str]:
    """mxrelay's whole environment: passthrough to the sink, the rig's DNS, nothing inherited."""
    environ = {
        "PATH": path,
        "MXRELAY_DELIVERY": "passthrough",
        "MXRELAY_UPSTREAM": f"smtp://{LOOPBACK}:{upstream_port}",
        "MXRELAY_SMTP_LISTEN": f"{LOOPBACK}:{RELAY_PORT}",
        "MXRELAY_METRICS_LISTEN": f"{LOOPBACK}:{METRICS_PORT}",
        "MXRELAY_HOSTNAME": f"relay.{DOMAIN}",
        "MXRELAY_DNS_SERVERS": f"{LOOPBACK}:{DNS_PORT}",
        "MXRELAY_DNS_ROUTABLE_NETWORKS": f"{MX_ADDRESS}/32",
        "MXRELAY_LOG_LEVEL": "warning",
    }
    environ.update(extra or {})
    return environ


def queued_messages(spool: Path) -> int:
    """Messages still in a Postfix queue (files under maildrop, incoming, active, deferred)."""
    return sum(
        len(files)
        for queue in ("incoming", "active", "deferred", "maildrop")
        for _, _, files in os.walk(spool / queue)
    )


# --- processes in a namespace ----------------------------------------------------------------


def _setns(fd: int) -> None:
    # Python 3.11 has no os.setns; libc's setns(2) moves only the calling thread.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@dataclass(frozen=True, slots=True)
class Service:
    label: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Rig:
    """A network namespace, a work directory and the processes started in them.

    Use as a context manager: leaving it stops every process by PID (TERM, then KILL after
    STOP_TIMEOUT), deletes the namespace and its resolv.conf, and removes the work directory.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        require_rig()
        self.name = f"mxbench-{os.getpid()}"
        self.clock = clock
        self.services: list[Service] = []
        self._cleanup = contextlib.ExitStack()
        self.base = Path()

    def __enter__(self) -> Rig:
        try:
            self._setup()
        except BaseException:
            self._cleanup.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cleanup.close()

    def _setup(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="mxbench-"))
        self._cleanup.callback(shutil.rmtree, self.base, ignore_errors=True)
        self.base.chmod(0o755)  # Postfix daemons run as the postfix user
        _check(["ip", "netns", "add", self.name])
        self._cleanup.callback(self._delete_namespace)
        _check(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"])
        etc = Path("/etc/netns")
        created_etc = not etc.exists()
        config = etc / self.name
        config.mkdir(parents=True, exist_ok=True)
        self._cleanup.callback(_remove_netns_config, config, created_etc)
        (config / "resolv.conf").write_text(f"nameserver {LOOPBACK}\noptions attempts:2\n")
        self._cleanup.callback(self._stop_all)

    def _delete_namespace(self) -> None:
        if not Path(f"/run/netns/{self.name}").exists():
            return
        listed = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=10
        )
        for pid in listed.stdout.split():  # stragglers our processes left; all ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        _check(["ip", "netns", "del", self.name])

    # --- processes -------------------------------------------------------------------------

    def start(
        self,
        label: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log = self.base / f"{label}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else _base_environment(),
                cwd=cwd,
                start_new_session=True,
            )
        service = Service(label, process, log)
        self.services.append(service)
        return service

    def stop(self, service: Service) -> None:
        """TERM by PID, wait, KILL if it will not go; returns once it has exited."""
        if service in self.services:
            self.services.remove(service)
        terminate(service.process)

    def _stop_all(self) -> None:
        for service in reversed(list(self.services)):
            self.stop(service)

    def run(self, argv: Sequence[str], timeout: float = 600.0) -> tuple[float, str]:
        """Run a command inside the namespace to completion: (seconds taken, its output)."""
        started = self.clock()
        result = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=_base_environment(),
            timeout=timeout,
        )
        elapsed = self.clock() - started
        output = (result.stdout + result.stderr).decode(errors="replace")
        if result.returncode != 0:
            raise RigError(f"{argv[0]} exited with {result.returncode}: {output.strip()[-2000:]}")
        return elapsed, output

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Run the calling thread in the namespace; sockets opened here stay in it afterwards."""
        with (
            open("/proc/thread-self/ns/net", "rb") as home,
            open(f"/run/netns/{self.name}", "rb") as target,
        ):
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())

    def wait_for_port(self, service: Service, port: int, timeout: float = START_TIMEOUT) -> None:
        """Until 127.0.0.1:port accepts a TCP connection inside the namespace."""
        deadline = self.clock() + timeout
        while True:
            self._check_alive(service)
            with self.inside(), socket.socket() as probe:
                probe.settimeout(1.0)
                if probe.connect_ex((LOOPBACK, port)) == 0:
                    return
            if self.clock() > deadline:
                raise RigError(f"{service.label} is not listening on {port}:\n{service.tail()}")
            time.sleep(0.05)  # polling a port that is not open yet

    def http_get(self, port: int, path: str) -> tuple[int, str]:
        with self.inside():
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, response.read().decode(errors="replace")
            finally:
                connection.close()

    def _check_alive(self, service: Service) -> None:
        if service.process.poll() is not None:
            raise RigError(
                f"{service.label} exited with {service.process.returncode}:\n{service.tail()}"
            )

    def memory(self, service: Service, field: str = "VmRSS") -> int:
        """`field` of the service's /proc/PID/status in bytes (the PID `ip netns exec` became)."""
        return status_bytes(Path(f"/proc/{service.pid}/status").read_text(), field)

    def cpu_seconds(self, service: Service) -> float:
        """CPU time of the service and all its descendants, living or reaped, so far."""
        return process_tree_cpu(service.pid)

    # --- the rig's servers -----------------------------------------------------------------

    def start_dns(self) -> Service:
        if not (REPO / "tests" / "support" / "dns_server.py").exists():
            raise Unavailable("tests/support/dns_server.py (the test DNS server) is missing")
        zone = self.base / "zone.txt"
        zone.write_text(zone_text())
        argv = [sys.executable, "-m", "tests.support.dns_server", "--zone-file", str(zone)]
        env = _base_environment() | {"PYTHONPATH": str(REPO)}
        service = self.start("dns", [*argv, "--port", str(DNS_PORT)], env=env, cwd=REPO)
        self.wait_for_port(service, DNS_PORT)
        return service

    def start_sink(self) -> Service:
        argv = ["smtp-sink", "-u", "nobody", f"{LOOPBACK}:{SINK_PORT}", "1024"]
        service = self.start("smtp-sink", argv)
        self.wait_for_port(service, SINK_PORT)
        return service

    def start_postfix(self) -> Service:
        base = self.base / "postfix"
        config = base / "etc"
        for directory in (config, base / "spool", base / "data"):
            directory.mkdir(parents=True)
        shutil.chown(base / "data", "postfix")
        main = postfix_main_cf(base, listen_host=LOOPBACK, sink_port=SINK_PORT)
        (config / "main.cf").write_text(main)
        (config / "master.cf").write_text(postfix_master_cf(LOOPBACK, POSTFIX_PORT))
        _check(["postfix", "-c", str(config), "check"])  # creates the queue directories
        daemon_directory = _check(["postconf", "-c", str(config), "-h", "daemon_directory"])
        master = Path(daemon_directory.strip()) / "master"
        service = self.start("postfix", [str(master), "-c", str(config), "-d"])
        self.wait_for_port(service, POSTFIX_PORT)
        return service

    def wait_postfix_idle(self, timeout: float = COMMAND_TIMEOUT) -> None:
        """Until the Postfix queue is empty (everything handed to the sink)."""
        spool = self.base / "postfix" / "spool"
        deadline = self.clock() + timeout
        while queued_messages(spool):
            if self.clock() > deadline:
                raise RigError(f"the Postfix queue did not drain in {timeout:.0f}s")
            time.sleep(0.1)  # polling the queue directories

    def start_relay(self, extra: Mapping[str, str] | None = None) -> Service:
        env = relay_environment(upstream_port=SINK_PORT, extra=extra, path=os.defpath)
        service = self.start("mxrelay", [sys.executable, "-m", "mxrelay", "serve"], env=env)
        self.wait_for_port(service, METRICS_PORT)
        deadline = self.clock() + START_TIMEOUT
        while self.http_get(METRICS_PORT, "/readyz")[0] != 200:
            self._check_alive(service)
            if self.clock() > deadline:
                raise RigError(f"mxrelay did not become ready:\n{service.tail()}")
            time.sleep(0.1)  # polling readiness
        return service


def terminate(process: subprocess.Popen[bytes]) -> int:
    """TERM by PID, wait, KILL if it will not go; its exit status, once it has exited."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    return process.returncode


def _base_environment() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}


def _check(argv: Sequence[str]) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip()
        raise RigError(f"{' '.join(argv)} failed ({result.returncode}): {detail}")
    return result.stdout


def _remove_netns_config(config: Path, remove_parent: bool) -> None:
    shutil.rmtree(config, ignore_errors=True)
    if remove_parent:
        with contextlib.suppress(OSError):
            config.parent.rmdir()
