"""The test DNS server itself: standalone mode (for benchmarks) and the query log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from tests.support.dns_server import DnsServer, ReceivedQuery

ROOT = Path(__file__).resolve().parents[2]


def test_standalone_server_serves_a_zone_file(tmp_path: Path) -> None:
    zone = tmp_path / "zones.txt"
    zone.write_text(
        "$TTL 120\n"
        "bench.example.net. IN MX 10 mx.bench.example.net.\n"
        "mx.bench.example.net. IN A 192.0.2.10\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.dns_server", "--zone-file", str(zone)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its address once it listens
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        query = dns.message.make_query("bench.example.net.", "MX")
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR
        assert [rr.to_text() for rr in response.answer[0]] == ["10 mx.bench.example.net."]
        assert response.answer[0].ttl == 120
        tcp = dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)
        assert tcp.answer == response.answer
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0


def test_query_log_records_name_type_and_transport() -> None:
    with DnsServer() as server:
        query = dns.message.make_query("Some.Example.ORG.", "AAAA")
        dns.query.udp(query, "127.0.0.1", port=server.port, timeout=5)
        dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=5)
        assert server.queries == [
            ReceivedQuery("some.example.org.", "AAAA", "udp"),
            ReceivedQuery("some.example.org.", "AAAA", "tcp"),
        ]
        server.reset_queries()
        assert server.queries == []
