"""Every row of graph-delivery.md's error table, against the stand-in answering it for real."""

from __future__ import annotations

import logging
from datetime import timedelta
from email.utils import format_datetime

import pytest

from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    PermanentFailure,
    Throttled,
    ThrottledBeforeSending,
    UpstreamUnavailable,
)
from mxrelay.delivery.graph.outcome import GraphConfigurationFault
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.model import GraphFault
from tests.support.graph_harness import graph_transport, job, message, relay_environ
from tests.support.graph_standin import (
    ACCESS_DENIED,
    EXPIRED_TOKEN,
    INVALID_BASE64,
    INVALID_RECIPIENTS,
    SECRET,
    SEND_AS_DENIED,
    TOO_LARGE,
    Answer,
    Drop,
    GraphStandIn,
    Hang,
    throttle,
    unavailable,
)


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (INVALID_RECIPIENTS, PermanentFailure, "no valid recipient"),
        (INVALID_BASE64, PermanentFailure, "could not decode"),
        (TOO_LARGE, PermanentFailure, "too large"),
        (Answer(400, "ErrorMessageSizeExceeded", "too big"), PermanentFailure, "too large"),
        (SEND_AS_DENIED, PermanentFailure, "Send As"),
        (Answer(400, "ErrorInvalidRequest", "bad"), PermanentFailure, "refused"),
        (ACCESS_DENIED, ConfigurationFault, "Mail.Send"),
        (unavailable(), UpstreamUnavailable, "503"),
        (Answer(500, "InternalServerError"), UpstreamUnavailable, "500"),
        (Answer(502, "BadGateway"), UpstreamUnavailable, "502"),
        (Answer(504, "GatewayTimeout"), UpstreamUnavailable, "504"),
    ],
)
async def test_each_answer_is_classified(
    standin: GraphStandIn, fault: Answer, error: type[DeliveryError], words: str
) -> None:
    standin.script(fault)
    async with graph_transport(standin) as transport:
        with pytest.raises(error, match=words) as raised:
            await transport.deliver(job(message()))
    request = standin.send_requests()[-1]
    assert raised.value.code == fault.status
    assert raised.value.error_code == fault.code
    assert raised.value.remote_id is not None  # Graph's request-id, recorded with the attempt
    assert request.status == fault.status
    assert standin.sent() == []


@pytest.mark.parametrize("header", ["Retry-After", "retry-after", "RETRY-AFTER"])
async def test_429_retry_after_seconds_closes_the_mailbox_lane(
    standin: GraphStandIn, header: str
) -> None:
    standin.script(throttle("7", header=header))
    async with graph_transport(standin) as transport:
        with pytest.raises(Throttled) as raised:
            await transport.deliver(job(message()))
        assert raised.value.retry_after == timedelta(seconds=7)
        assert raised.value.attempted  # Graph saw this one: it counts as an attempt
        # Another message for the same mailbox waits too, without a request or an attempt.
        with pytest.raises(ThrottledBeforeSending) as second:
            await transport.deliver(job(message(subject="another")))
        assert timedelta(seconds=6) < second.value.retry_after <= timedelta(seconds=7)
    assert len(standin.send_requests()) == 1


async def test_429_retry_after_http_date(standin: GraphStandIn) -> None:
    now = [1000.0]
    from datetime import UTC, datetime

    wall = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    standin.script(throttle(format_datetime(wall + timedelta(seconds=90), usegmt=True)))
    async with graph_transport(standin, clock=lambda: now[0], wall=lambda: wall) as transport:
        with pytest.raises(Throttled) as raised:
            await transport.deliver(job(message()))
        assert raised.value.retry_after == timedelta(seconds=90)
        now[0] += 89
        with pytest.raises(ThrottledBeforeSending, match="Retry-After"):
            await transport.deliver(job(message(subject="another")))
        now[0] += 1
        await transport.deliver(job(message(subject="later")))
    assert len(standin.sent()) == 1


async def test_503_with_retry_after_is_throttling(standin: GraphStandIn) -> None:
    standin.script(unavailable(retry_after="30"))
    async with graph_transport(standin) as transport:
        with pytest.raises(Throttled) as raised:
            await transport.deliver(job(message()))
    assert raised.value.retry_after == timedelta(seconds=30)
    assert raised.value.code == 503


async def test_401_refreshes_the_token_once_and_retries_at_once(standin: GraphStandIn) -> None:
    async with graph_transport(standin) as transport:
        await transport.deliver(job(message(subject="first")))
        standin.expire_tokens()  # the token MSAL cached is now expired for Graph
        outcome = await transport.deliver(job(message(subject="second")))
    statuses = [r.status for r in standin.send_requests()]
    assert statuses == [202, 401, 202]
    assert len(standin.token_requests()) == 2
    assert outcome.http_status == 202
    assert len(standin.sent()) == 2


async def test_a_second_401_is_a_configuration_fault(standin: GraphStandIn) -> None:
    standin.script(EXPIRED_TOKEN, EXPIRED_TOKEN)
    async with graph_transport(standin) as transport:
        with pytest.raises(GraphConfigurationFault, match="same cloud") as raised:
            await transport.deliver(job(message()))
    assert raised.value.fault is GraphFault.TOKEN_REJECTED
    assert len(standin.send_requests()) == 2


async def test_a_hang_past_the_timeout_is_temporary(standin: GraphStandIn) -> None:
    standin.script(Hang())
    environ = relay_environ(
        standin, MXRELAY_GRAPH_TIMEOUT="300ms", MXRELAY_GRAPH_TIMEOUT_PER_MIB="0s"
    )
    async with graph_transport(standin, environ=environ) as transport:
        with pytest.raises(UpstreamUnavailable, match="did not answer within"):
            await transport.deliver(job(message()))
        await transport.deliver(job(message(subject="after the hang")))
    assert len(standin.sent()) == 1


async def test_accepted_then_dropped_is_retried_with_the_same_bytes(standin: GraphStandIn) -> None:
    """Graph took the message but the answer was lost: the retry may duplicate it, so it
    carries the same bytes and the same Message-ID, and Exchange can tell."""
    standin.script(Drop())
    data = message(headers=("Date: Fri, 27 Nov 2026 10:00:00 +0000",))
    attempt = job(data)
    async with graph_transport(standin) as transport:
        with pytest.raises(UpstreamUnavailable, match="may have accepted"):
            await transport.deliver(attempt)
        await transport.deliver(attempt)
    first, second = standin.sent()
    assert first.mime == second.mime
    assert f"<{attempt.message_id}@relay.test>".encode() in first.mime


async def test_unknown_mailbox(standin: GraphStandIn) -> None:
    data = message(sender="nobody@contoso.example")
    async with graph_transport(standin) as transport:
        with pytest.raises(PermanentFailure, match="does not exist"):
            await transport.deliver(job(data, mail_from="nobody@contoso.example"))
    environ = relay_environ(standin, MXRELAY_GRAPH_MAILBOX="nobody@contoso.example")
    async with graph_transport(standin, environ=environ) as transport:
        with pytest.raises(GraphConfigurationFault, match="MXRELAY_GRAPH_MAILBOX") as raised:
            await transport.deliver(job(data))
    assert raised.value.fault is GraphFault.MAILBOX


async def test_access_denied_holds_raises_the_alarm_and_recovers(
    standin: GraphStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Mail.Send consent withdrawn: a configuration fault (metric, status, log line) until
    consent is granted again; the probe says when."""
    metrics = Metrics()
    metrics.prime("test")
    health = Health()
    caplog.set_level(logging.INFO)
    gauge = "mxrelay_graph_configuration_fault"
    async with graph_transport(standin, metrics=metrics, health=health) as transport:
        await transport.deliver(job(message(subject="warm the token cache")))
        standin.app.roles = ()
        standin.expire_tokens()
        with pytest.raises(ConfigurationFault, match=r"Mail\.Send"):
            await transport.deliver(job(message()))
        assert metrics.registry.get_sample_value(gauge, {"fault": "access_denied"}) == 1
        assert health.ready  # mail is held, not refused
        assert "Mail.Send" in health.degraded()["graph"]
        with pytest.raises(ConfigurationFault, match=r"no Mail\.Send application role"):
            await transport.probe()
        standin.app.roles = ("Mail.Send",)  # the administrator grants consent again
        await transport.probe()
        assert health.failing() == {}
        assert metrics.registry.get_sample_value(gauge, {"fault": "access_denied"}) == 0
        await transport.deliver(job(message(subject="after consent")))
    assert "graph_configuration_fault" in caplog.text
    assert SECRET not in caplog.text


async def test_mailbox_outside_the_rbac_scope(standin: GraphStandIn) -> None:
    standin.add_mailbox("ceo@contoso.example", in_scope=False)
    async with graph_transport(standin) as transport:
        with pytest.raises(GraphConfigurationFault, match="RBAC") as raised:
            await transport.deliver(job(message(sender="ceo@contoso.example")))
    assert raised.value.fault is GraphFault.ACCESS_DENIED
    assert "RAOP" in str(raised.value)  # Graph's own words come along


async def test_errors_never_carry_the_secret_or_the_token(standin: GraphStandIn) -> None:
    standin.script(ACCESS_DENIED, unavailable())
    texts: list[str] = []
    async with graph_transport(standin) as transport:
        for _ in range(2):
            with pytest.raises(DeliveryError) as raised:
                await transport.deliver(job(message()))
            texts.append(str(raised.value))
    token = standin.send_requests()[0].headers["authorization"][7:]
    for text in texts:
        assert SECRET not in text
        assert token not in text
