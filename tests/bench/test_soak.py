"""The soak: what it sends, its sink and client over real SMTP, and a short soak against a real
`mxrelay serve` with the figures it reports checked for sense."""

from __future__ import annotations

import collections
import email
import email.policy
import os
import random
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from bench import rig, soak
from tests.support.polling import until
from tests.support.processes import free_port


def test_deferred_addresses_are_about_the_share_and_chosen_by_address_alone() -> None:
    addresses = [f"u{i}-0@{rig.DOMAIN}" for i in range(100_000)]
    picked = [a for a in addresses if soak.deferred_first(a, 0.01)]
    assert 900 <= len(picked) <= 1100
    assert picked == [a for a in addresses if soak.deferred_first(a, 0.01)]
    assert all(soak.deferred_first(a.upper(), 0.01) for a in picked)
    assert not any(soak.deferred_first(a, 0.0) for a in addresses[:1000])


def test_normal_messages_put_about_the_share_of_recipients_in_non_existent_domains() -> None:
    rng = random.Random(1)
    envelopes = [soak.normal(seq, rng, 0.10) for seq in range(3000)]
    recipients = [r for e in envelopes for r in e.recipients]
    refused = [r for r in recipients if not r.endswith(f"@{rig.DOMAIN}")]
    assert 0.08 <= len(refused) / len(recipients) <= 0.12
    domains = [r.partition("@")[2] for r in refused]
    assert len(set(domains)) == len(domains)
    assert all(re.fullmatch(rf"[a-z]{{12}}\.{rig.FLOOD_TLD}", d) for d in domains)
    assert {len(e.recipients) for e in envelopes} == {1, 2, 3}
    parsed = email.message_from_bytes(envelopes[0].data, policy=email.policy.default)
    assert parsed["Subject"] == "soak message 0"
    assert 1800 <= len(envelopes[0].data) <= 3000


def test_hostile_messages_are_what_they_are_named() -> None:
    made = {build(7).kind: build(7) for build in soak.HOSTILE}
    assert len(made) == len(soak.HOSTILE)
    nest = made["deep MIME nest"].data
    assert nest.count(b"Content-Type: multipart/mixed") == 1001
    subject = made["encoded-word run"].data.split(b"\r\n\r\n", 1)[0]
    assert subject.count(b"=?utf-8?q?") == 4000
    utf7 = made["utf-7 body"].data.split(b"\r\n\r\n", 1)[1].decode("utf-7")
    assert any(0xD800 <= ord(c) <= 0xDFFF for c in utf7)
    assert b"Subject: before\x00after\r\n" in made["NUL in Subject"].data
    longest = max(len(line) for line in made["1 MiB header line"].data.split(b"\r\n"))
    assert longest > 1024 * 1024
    assert b"From: " + b"(" * 5000 + b"c" + b")" * 5000 in made["nested comments"].data
    flood = made["3,000 refused RCPTs"].recipients
    assert len(flood) == 3001
    assert flood[0] == f"h7@{rig.DOMAIN}"
    assert not any(r.endswith(rig.DOMAIN) for r in flood[1:])
    for envelope in made.values():
        assert envelope.data.endswith(b"\r\n")


def test_plan_from_the_environment_is_bounded() -> None:
    assert soak.Plan.from_environment({}) == soak.Plan()
    plan = soak.Plan.from_environment({"MXRELAY_SOAK_SECONDS": "60", "MXRELAY_SOAK_RATE": "5"})
    assert (plan.seconds, plan.rate) == (60.0, 5.0)
    for bad in ({"MXRELAY_SOAK_SECONDS": "0"}, {"MXRELAY_SOAK_RATE": "lots"}):
        with pytest.raises(ValueError, match="expected a number from"):
            soak.Plan.from_environment(bad)


def test_percentile_by_nearest_rank_and_slope_per_hour() -> None:
    values = [float(v) for v in range(1, 101)]
    assert soak.percentile(values, 50) == 50
    assert soak.percentile(values, 99) == 99
    assert soak.percentile([3.0], 99) == 3.0
    assert soak.percentile([], 50) != soak.percentile([], 50)  # NaN
    assert soak.slope_per_hour([(0.0, 10.0), (1800.0, 15.0), (3600.0, 20.0)]) == pytest.approx(10)
    assert soak.slope_per_hour([(5.0, 1.0)]) == 0.0


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    status = tmp_path / "sink.json"
    argv = [sys.executable, "-m", "bench.soak", "sink", "--status", str(status)]
    with (tmp_path / "sink.log").open("wb") as log:
        process, port = soak.start_listening([*argv, "--deferred-share", "0.01"], log)
    try:
        yield port, status
    finally:
        assert soak.stop(process) == 0


def _deferred_address() -> str:
    return next(
        a for i in range(10_000) if soak.deferred_first(a := f"probe{i}@{rig.DOMAIN}", 0.01)
    )


async def test_sink_defers_its_addresses_once_and_takes_long_lines(
    sink: tuple[int, Path],
) -> None:
    port, status = sink
    deferred, other = _deferred_address(), f"other@{rig.DOMAIN}"
    data = b"Subject: x\r\nX-Long: " + b"a" * (1024 * 1024) + b"\r\n\r\nbody\r\n"
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as client:
        refused, _ = await client.sendmail("a@example.net", [deferred, other], data)
        assert refused[deferred][0] == 450
        refused, _ = await client.sendmail("a@example.net", [deferred], b"Subject: y\r\n\r\nz\r\n")
        assert refused == {}
    # The status file is written every quarter second.
    await until(lambda: soak.read_sink_status(status).messages == 2, interval=0.05)
    assert soak.read_sink_status(status) == soak.SinkStatus(
        messages=2, recipients=2, deferred=1, deferred_delivered=1, duplicates=0
    )


async def test_client_records_each_reply_and_the_latency_of_the_end_of_data(
    sink: tuple[int, Path],
) -> None:
    port, _ = sink
    deferred = _deferred_address()
    envelope = soak.Envelope("normal", (deferred, f"ok@{rig.DOMAIN}"), b"Subject: s\r\n\r\n.b\r\n")
    outcome = soak.Outcome("normal", 0.0)
    await soak.send(port, envelope, outcome, 0.01)
    assert outcome.rcpt == collections.Counter({450: 1, 250: 1})
    assert outcome.result == "250"
    assert outcome.accepted == 1
    assert outcome.deferred == 0  # the deferred one was not taken with the message
    assert outcome.latency is not None
    assert 0 < outcome.latency < 10
    closed = soak.Outcome("normal", 0.0)
    await soak.send(free_port(), envelope, closed, 0.01)
    assert closed.result == "ConnectionRefusedError at connect"


def test_upstream_connections_are_the_process_s_connections_to_that_port() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as one,
        socket.create_server(("127.0.0.1", 0)) as two,
    ):
        ports = [server.getsockname()[1] for server in (one, two)]
        clients = [
            socket.create_connection(("127.0.0.1", p)) for p in (ports[0], ports[0], ports[1])
        ]
        try:
            assert soak.upstream_connections([os.getpid()], ports[0]) == 2
            assert soak.upstream_connections([os.getpid()], ports[1]) == 1
            assert soak.upstream_connections([2**22 + 1], ports[0]) == 0  # no such process
        finally:
            for client in clients:
                client.close()


@pytest.mark.slow
def test_short_soak_accepts_refuses_defers_drains_and_reports() -> None:
    plan = soak.Plan(
        seconds=25,
        rate=8,
        hostile_every=3,
        deferred_share=0.03,
        row_every=5,
        retry_initial="2s",
        retry_max="4s",
        drain_timeout=90,
        idle_after_drain=6,
    )
    report = soak.measure(plan)
    assert report.relay_exit == 0  # alive to the end, stopped cleanly by SIGTERM
    normal = report.normal
    assert len(report.outcomes) == 200
    for outcome in normal:  # every refused recipient got 550 at RCPT, every other 250
        assert outcome.rcpt[550] == outcome.refused_planned, outcome
        assert outcome.rcpt[250] + outcome.refused_planned == outcome.rcpt.total(), outcome
    assert sum(o.refused_planned for o in normal) > 0
    results = collections.Counter(o.result for o in normal)
    with_recipient = [o for o in normal if o.rcpt[250]]
    assert results["250"] >= 0.9 * len(with_recipient), results
    assert results["every RCPT refused"] == len(normal) - len(with_recipient)
    kinds = {o.kind for o in report.outcomes} - {"normal"}
    assert kinds == {build(0).kind for build in soak.HOSTILE}
    assert all(o.result for o in report.outcomes)
    refused = [o for o in report.outcomes if o.result not in ("250", "every RCPT refused")]
    assert all(o.reply for o in refused), refused  # the relay's words, for the report
    # delivered: every recipient taken with a 250, once; the deferred ones after their retry
    assert report.sink.recipients == report.accepted_recipients > 0
    assert report.sink.duplicates == 0
    assert report.sink.deferred == report.deferred_expected > 0
    assert report.sink.deferred_delivered == report.sink.deferred
    assert report.drain.seconds is not None
    assert all(report.drain.left.get(state, 0) == 0 for state in soak.WAITING_STATES)
    # sampled every second, both processes, queue gauges read
    assert len(report.samples) >= 25
    assert all(
        s.rss[0] > 0 and s.rss[1] > 0 and s.fds[0] > 0 and s.fds[1] > 0 for s in report.samples
    )
    assert "deferred" in report.samples[-1].queue
    latencies = [o.latency for o in normal if o.latency is not None]
    assert len(latencies) == results["250"]
    assert 0 < soak.percentile(latencies, 99) < 30
    text = soak.format_report(report)
    assert "No peer: the figures to compare are the relay's own, over time." in text
    rows = re.findall(r"^ +0:\d\d +\d+ +\d+ ", text, re.M)
    assert len(rows) == 5
    assert re.search(r"^leak verdict: RSS (steady|GROWING) .*, fds (steady|GROWING) ", text, re.M)
    for kind in kinds:
        assert re.search(rf"^{re.escape(kind)} +\d+ sent: ", text, re.M)
