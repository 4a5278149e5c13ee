"""The rig's pure pieces against the real programs that consume them (postconf, the test DNS
server, mxrelay's settings and recipient check), and the rig's clean-up in a real namespace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from bench import rig
from mxrelay.config import load_settings
from mxrelay.metrics import Metrics
from mxrelay.model import DeliveryMode, Reason
from mxrelay.rcpt.check import RecipientChecker
from tests.support.dns_server import DnsServer

needs_postconf = pytest.mark.skipif(shutil.which("postconf") is None, reason="needs postconf")


def test_smtp_source_command_line() -> None:
    argv = rig.SourceLoad(5000, 20).argv("127.0.0.1", 2525)
    assert argv[0] == "smtp-source"
    assert argv[-1] == "127.0.0.1:2525"
    options = dict(zip(argv[1:-1:2], argv[2:-1:2], strict=True))
    assert options["-s"] == "20"
    assert options["-m"] == "5000"
    assert options["-l"] == "2048"
    assert options["-t"] == f"rcpt@{rig.DOMAIN}"


def _ask(server: DnsServer, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", 5, port=server.port)


def test_zone_gives_the_bench_domain_an_mx_and_every_flood_name_nxdomain() -> None:
    with DnsServer(zones=()) as server:
        server.load(rig.zone_text())
        mx = _ask(server, rig.DOMAIN, "MX")
        assert [rr.to_text() for rr in mx.answer[0]] == [f"10 mx.{rig.DOMAIN}."]
        address = _ask(server, f"mx.{rig.DOMAIN}", "A")
        assert [rr.to_text() for rr in address.answer[0]] == [rig.MX_ADDRESS]
        flood = _ask(server, f"qwertyuiopas.{rig.FLOOD_TLD}", "MX")
        assert flood.rcode() == dns.rcode.NXDOMAIN
        assert flood.authority  # the SOA that makes the answer cacheable


async def test_relay_environment_is_passthrough_and_accepts_only_the_bench_domain() -> None:
    environ = rig.relay_environment(upstream_port=2526, path="/usr/bin")
    assert set(environ) == {"PATH"} | {name for name in environ if name.startswith("MXRELAY_")}
    settings = load_settings(environ)
    assert settings.service.delivery is DeliveryMode.PASSTHROUGH
    assert str(settings.upstream.url).endswith(":2526")
    assert settings.smtp.listen.port == rig.RELAY_PORT
    assert settings.web.metrics_listen.port == rig.METRICS_PORT
    with DnsServer(zones=()) as server:
        server.load(rig.zone_text())
        extra = {"MXRELAY_DNS_SERVERS": server.address}
        settings = load_settings(rig.relay_environment(upstream_port=2526, extra=extra))
        async with RecipientChecker(settings.dns, settings.policy, Metrics()) as checker:
            good = await checker.check(f"<rcpt@{rig.DOMAIN}>", False)
            bad = await checker.check(f"<user@nosuchdomain.{rig.FLOOD_TLD}>", False)
    assert good.accepted
    assert (bad.reply.code, bad.reason) == (550, Reason.NXDOMAIN)


@needs_postconf
def test_postfix_configuration_parses_without_warnings(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(
        rig.postfix_main_cf(tmp_path, listen_host="127.0.0.1", sink_port=2526)
    )
    (tmp_path / "master.cf").write_text(rig.postfix_master_cf("127.0.0.1", 2525))
    main = subprocess.run(
        ["postconf", "-c", str(tmp_path), "-n"], capture_output=True, text=True, check=True
    )
    assert main.stderr == ""
    values = dict(line.split(" = ", 1) for line in main.stdout.splitlines() if " = " in line)
    assert values["relayhost"] == "[127.0.0.1]:2526"
    assert values["smtpd_recipient_restrictions"].startswith("reject_unknown_recipient_domain")
    assert values["queue_directory"] == str(tmp_path / "spool")
    assert values["inet_interfaces"] == "127.0.0.1"
    master = subprocess.run(
        ["postconf", "-c", str(tmp_path), "-F"], capture_output=True, text=True, check=True
    )
    assert master.stderr == ""
    chroot = [line for line in master.stdout.splitlines() if "/chroot = " in line]
    assert chroot
    assert all(line.endswith("= n") for line in chroot)
    assert "127.0.0.1:2525/inet/command = smtpd" in master.stdout


def test_queued_messages_counts_files_in_the_queues(tmp_path: Path) -> None:
    for name in ("incoming/a", "active/b/c", "deferred/d/e", "bounce/f"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    assert rig.queued_messages(tmp_path) == 3


@pytest.mark.usefixtures("rig_machine")
def test_rig_removes_namespace_processes_and_files_even_when_a_run_fails() -> None:
    seen: list[tuple[str, Path, rig.Service]] = []

    def failing_run() -> None:
        with rig.Rig() as bench_rig:
            sink = bench_rig.start_sink()
            seen.append((bench_rig.name, bench_rig.base, sink))
            assert bench_rig.memory(sink) > 0
            raise RuntimeError("run failed")

    with pytest.raises(RuntimeError, match="run failed"):
        failing_run()
    [(name, base, sink)] = seen
    assert sink.process.returncode is not None
    assert not base.exists()
    assert not Path(f"/etc/netns/{name}").exists()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert name not in listed.stdout.split()
