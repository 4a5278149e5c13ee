"""`mxrelay serve` as a real process, in the reference validator's place: swaks → mxrelay
(passthrough, reference variable names) → Postfix's smtp-sink; SIGTERM drains and exits 0."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from tests.support.dns_server import DnsServer, Fault
from tests.support.processes import ServeProcess, smtp_sink
from tests.support.relay_app import ROUTABLE_FOR_TESTS


def swaks(port: int, to: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "swaks",
            "--server",
            f"127.0.0.1:{port}",
            "--from",
            "app@example.org",
            "--to",
            to,
            "--helo",
            "client.example",
            "--body",
            "through the relay",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_drop_in_replacement_for_the_reference_validator(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    dns_server.fault("fake-signup.example.org", Fault.NXDOMAIN)
    with smtp_sink() as (sink_port, dumps):
        serve = ServeProcess(
            {
                "UPSTREAM_HOST": "127.0.0.1",
                "UPSTREAM_PORT": str(sink_port),
                "MXRELAY_DNS_SERVERS": dns_server.address,
                "MXRELAY_DNS_ROUTABLE_NETWORKS": ROUTABLE_FOR_TESTS,
                "MXRELAY_LOG_FORMAT": "json",
            },
            tmp_path / "relay.log",
        )
        try:
            good = swaks(serve.smtp_port, "user@example.net")
            bad = swaks(serve.smtp_port, "spammer@fake-signup.example.org")
            with urllib.request.urlopen(
                f"http://127.0.0.1:{serve.metrics_port}/metrics", timeout=10
            ) as r:
                metrics = r.read().decode()
            with urllib.request.urlopen(
                f"http://127.0.0.1:{serve.metrics_port}/healthz", timeout=10
            ) as r:
                health = json.loads(r.read())
            assert (health["status"], health["ready"]) == ("ok", True)
            assert health["conditions"]["smtp"] == {
                "ok": True,
                "detail": "listening",
                "readiness": True,
            }
            assert serve.terminate() == 0
            dumped = [path.read_text() for path in dumps.iterdir()]
        finally:
            serve.close()
    assert good.returncode == 0, good.stdout + serve.log
    assert bad.returncode != 0
    assert "550 5.1.2 <spammer@fake-signup.example.org>: Recipient address rejected" in bad.stdout
    assert "Bad destination mailbox address" in bad.stdout
    [content] = dumped
    assert "X-Rcpt-Args: <user@example.net>" in content
    assert "by relay.example.net (mxrelay) with ESMTP id" in content
    assert "through the relay" in content
    assert 'mxrelay_smtp_recipients_total{reason="nxdomain",verdict="rejected"} 1.0' in metrics
    assert 'mxrelay_passthrough_transactions_total{result="accepted"} 1.0' in metrics
    events = [json.loads(line) for line in serve.log.splitlines() if line.startswith("{")]
    transactions = [e for e in events if e["event"] == "transaction"]
    assert any(
        e["accepted"] == ["user@example.net"] and e["outcome"].startswith("250")
        for e in transactions
    )
    refused = [e for e in events if e["event"] == "recipient refused"]
    assert refused[0]["reason"] == "nxdomain"
    assert refused[0]["recipient"] == "spammer@fake-signup.example.org"
    assert events[-1]["event"] == "stopped"
    assert "through the relay" not in serve.log  # no message content in logs
