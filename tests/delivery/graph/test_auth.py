"""Tokens through the real MSAL code path, against the stand-in identity platform."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msal
import pytest
import trustme

from mxrelay.config import GraphSettings, load_settings
from mxrelay.delivery.errors import UpstreamUnavailable
from mxrelay.delivery.graph.auth import AccessToken, MsalTokenSource
from mxrelay.delivery.graph.outcome import GraphConfigurationFault
from mxrelay.metrics import Metrics
from mxrelay.model import GraphFault
from tests.support.graph_harness import graph_transport, job, message, relay_environ
from tests.support.graph_standin import SECRET, TENANT_DOMAIN, GraphStandIn
from tests.support.graph_standin_tokens import Reply

WRONG_SECRET = "Wr0ng~SecretValue.123"


def source(environ: dict[str, str], **options: object) -> MsalTokenSource:
    settings: GraphSettings = load_settings(environ).graph
    return MsalTokenSource(settings, environ=environ, **options)  # type: ignore[arg-type]


def certificate_environ(standin: GraphStandIn, path: Path, password: str = "") -> dict[str, str]:
    return relay_environ(
        standin,
        MXRELAY_GRAPH_CLIENT_SECRET="",
        MXRELAY_GRAPH_CERTIFICATE_FILE=str(path),
        MXRELAY_GRAPH_CERTIFICATE_PASSWORD=password,
    )


async def test_secret_token_is_issued_then_served_from_msal_cache(standin: GraphStandIn) -> None:
    metrics = Metrics()
    tokens = source(relay_environ(standin), metrics=metrics)
    try:
        first = await tokens.token()
        second = await tokens.token()
    finally:
        await tokens.aclose()
    assert first.source == "identity_provider"
    assert second.source == "cache"
    assert second.value == first.value
    assert first.roles() == ("Mail.Send",)
    [request] = standin.token_requests()
    assert b"grant_type=client_credentials" in request.body
    assert f"scope={standin.base_url}/.default".replace(":", "%3A").replace(
        "/", "%2F"
    ).encode() in (request.body)
    registry = metrics.registry
    assert (
        registry.get_sample_value("mxrelay_graph_token_acquisitions_total", {"source": "cache"})
        == 1
    )
    assert SECRET not in repr(first)
    assert first.value not in repr(first)


@pytest.mark.parametrize(
    ("pfx", "password"),
    [(False, ""), (False, "pem-password"), (True, ""), (True, "pfx-password")],
    ids=["pem", "encrypted-pem", "pfx", "pfx-with-password"],
)
async def test_certificate_credentials_sign_a_client_assertion(
    standin: GraphStandIn, pfx: bool, password: str
) -> None:
    path = standin.issue_certificate(pfx=pfx, password=password.encode() or None)
    environ = certificate_environ(standin, path, password)
    async with graph_transport(standin, environ=environ) as transport:
        await transport.deliver(job(message()))
    [request] = standin.token_requests()
    assert b"client_assertion=" in request.body
    assert b"client_secret" not in request.body
    assert len(standin.sent()) == 1


async def test_certificate_not_registered_is_a_credentials_fault(standin: GraphStandIn) -> None:
    path = standin.issue_certificate()
    standin.issue_certificate(pfx=True)  # the app now knows only the newer certificate
    tokens = source(certificate_environ(standin, path))
    try:
        with pytest.raises(GraphConfigurationFault, match="AADSTS700027") as raised:
            await tokens.token()
    finally:
        await tokens.aclose()
    assert raised.value.fault is GraphFault.CREDENTIALS
    assert "upload the certificate" in str(raised.value)


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"MXRELAY_GRAPH_CLIENT_SECRET": WRONG_SECRET}, "AADSTS7000215", "secret is wrong"),
        (
            {"MXRELAY_GRAPH_CLIENT_ID": "00000000-0000-0000-0000-000000000000"},
            "AADSTS700016",
            "client id",
        ),
        ({"MXRELAY_GRAPH_ENDPOINT": "https://graph.example"}, "AADSTS1002012", "scope"),
    ],
)
async def test_token_refusals_are_configuration_faults_in_words(
    standin: GraphStandIn, change: dict[str, str], code: str, words: str
) -> None:
    tokens = source(relay_environ(standin, **change))
    try:
        with pytest.raises(GraphConfigurationFault, match=code) as raised:
            await tokens.token()
    finally:
        await tokens.aclose()
    assert words in str(raised.value)
    assert SECRET not in str(raised.value)
    assert WRONG_SECRET not in str(raised.value)


async def test_disabled_app_and_unknown_tenant(standin: GraphStandIn) -> None:
    standin.app.disabled = True
    tokens = source(relay_environ(standin))
    try:
        with pytest.raises(GraphConfigurationFault, match=r"AADSTS7000112.*disabled"):
            await tokens.token()
    finally:
        await tokens.aclose()
    tokens = source(relay_environ(standin, MXRELAY_GRAPH_TENANT_ID="fabrikam.example"))
    try:
        with pytest.raises(GraphConfigurationFault, match="MXRELAY_GRAPH_TENANT_ID"):
            await tokens.token()
    finally:
        await tokens.aclose()


async def test_tenant_by_domain_name(standin: GraphStandIn) -> None:
    tokens = source(relay_environ(standin, MXRELAY_GRAPH_TENANT_ID=TENANT_DOMAIN))
    try:
        assert (await tokens.token()).value
    finally:
        await tokens.aclose()


async def test_identity_platform_trouble_is_temporary(standin: GraphStandIn) -> None:
    metrics = Metrics()
    standin.script_token(Reply(503, b"Service Unavailable"))
    tokens = source(relay_environ(standin), metrics=metrics)
    try:
        with pytest.raises(UpstreamUnavailable, match="identity platform"):
            await tokens.token()
        assert (await tokens.token()).value  # the next request goes through
    finally:
        await tokens.aclose()
    assert (
        metrics.registry.get_sample_value(
            "mxrelay_graph_token_failures_total", {"kind": "unavailable"}
        )
        == 1
    )


async def test_unreachable_authority_is_temporary(standin: GraphStandIn) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    tokens = source(relay_environ(standin, MXRELAY_GRAPH_AUTHORITY=f"https://127.0.0.1:{port}"))
    try:
        with pytest.raises(UpstreamUnavailable, match="could not be reached"):
            await tokens.token()
    finally:
        await tokens.aclose()


async def test_ssl_cert_file_wins_over_requests_own_variables(
    standin: GraphStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """requests would let REQUESTS_CA_BUNDLE override a session's trust; MSAL must still use
    the bundle SSL_CERT_FILE names (and an unrelated bundle must make it fail)."""
    other = tmp_path / "other-ca.pem"  # a CA that did not sign the stand-in's certificate
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other))
    tokens = source(relay_environ(standin))
    try:
        assert (await tokens.token()).value
    finally:
        await tokens.aclose()
    wrong = source(relay_environ(standin, SSL_CERT_FILE=str(other)))
    try:
        with pytest.raises(UpstreamUnavailable):
            await wrong.token()
    finally:
        await wrong.aclose()


async def test_tokens_close_to_expiry_are_refreshed_before_use(standin: GraphStandIn) -> None:
    """MSAL treats a token with less than five minutes left as expired: with 299-second
    tokens every use fetches a new one, so no request ever carries an expiring token."""
    standin.identity.token_lifetime = 299
    async with graph_transport(standin) as transport:
        for index in range(3):
            await transport.deliver(job(message(subject=f"m{index}")))
    assert len(standin.token_requests()) == 3
    tokens = {r.headers["authorization"] for r in standin.send_requests()}
    assert len(tokens) == 3


def counting_msal(asked: list[float], clock: Callable[[], float]) -> Callable[..., Any]:
    """MSAL's real client, noting when it is asked for a token."""

    def application(*args: Any, **kwargs: Any) -> Any:
        app = msal.ConfidentialClientApplication(*args, **kwargs)
        acquire = app.acquire_token_for_client

        def counted(*a: Any, **k: Any) -> Any:
            asked.append(clock())
            return acquire(*a, **k)

        app.acquire_token_for_client = counted
        return app

    return application


MOMENTS = (1000.0, 1001.0, 1021.0, 1050.0, 1059.9, 1060.1)


@pytest.mark.parametrize(
    ("lifetime", "asked_at"),
    [
        (3599, [1000.0, 1060.1]),  # a minute at most
        (330, [1000.0, 1050.0]),  # never within MSAL's five minutes of the expiry
        (300, list(MOMENTS)),  # expired for MSAL at once: never held
    ],
)
async def test_a_token_is_reused_in_memory_for_a_minute_at_most(
    standin: GraphStandIn, lifetime: int, asked_at: list[float]
) -> None:
    """MSAL is asked once a minute, not for every request (each ask is a thread hand-over and a
    cache search under a lock, which concurrent requests queue on), so MSAL still refreshes a
    token when it chooses, at most a minute late, and never hands out one it calls expired."""
    standin.identity.token_lifetime = lifetime
    now = [0.0]
    asked: list[float] = []
    metrics = Metrics()
    tokens = source(
        relay_environ(standin),
        metrics=metrics,
        clock=lambda: now[0],
        application=counting_msal(asked, lambda: now[0]),
    )
    handed: list[AccessToken] = []
    try:
        for moment in MOMENTS:
            now[0] = moment
            handed.append(await tokens.token())
    finally:
        await tokens.aclose()
    assert asked == asked_at
    if lifetime > 300:  # MSAL's own cache answers its later asks: one token throughout
        assert {token.value for token in handed} == {handed[0].value}
        assert [token.source for token in handed] == ["identity_provider"] + ["cache"] * 5
        assert (
            metrics.registry.get_sample_value(
                "mxrelay_graph_token_acquisitions_total", {"source": "cache"}
            )
            == len(MOMENTS) - 1
        )


async def test_requests_waiting_for_a_token_share_the_one_msal_gave(
    standin: GraphStandIn,
) -> None:
    """Requests that queued while MSAL was asked take the token it gave, without asking again."""
    asked: list[float] = []
    tokens = source(relay_environ(standin), application=counting_msal(asked, lambda: 0.0))
    try:
        handed = await asyncio.gather(*(tokens.token() for _ in range(4)))
    finally:
        await tokens.aclose()
    assert len(asked) == 1
    assert len({token.value for token in handed}) == 1


async def test_a_token_refused_by_graph_is_not_handed_out_again(standin: GraphStandIn) -> None:
    """After a 401, `invalidate` drops the token from memory too: the next one is new."""
    tokens = source(relay_environ(standin))
    try:
        first = await tokens.token()
        await tokens.invalidate(first)
        second = await tokens.token()
    finally:
        await tokens.aclose()
    assert second.value != first.value
    assert second.source == "identity_provider"
    assert len(standin.token_requests()) == 2


async def test_rotated_secret_file_is_picked_up_after_a_failure(
    standin: GraphStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_file = tmp_path / "secret"
    secret_file.write_text("the-old-secret\n")
    environ = relay_environ(
        standin, MXRELAY_GRAPH_CLIENT_SECRET="", MXRELAY_GRAPH_CLIENT_SECRET_FILE=str(secret_file)
    )
    async with graph_transport(standin, environ=environ) as transport:
        with pytest.raises(GraphConfigurationFault, match="AADSTS7000215"):
            await transport.deliver(job(message()))
        secret_file.write_text(SECRET + "\n")  # the operator rotates the secret
        await transport.probe()
        await transport.deliver(job(message()))
    assert len(standin.sent()) == 1
    assert SECRET not in caplog.text
    assert "the-old-secret" not in caplog.text
