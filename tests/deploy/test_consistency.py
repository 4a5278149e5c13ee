"""The manifests agree with mxrelay and with themselves: every variable is one mxrelay knows and
the settings they make load; every port referenced exists; no two listeners in a pod share a
port; the reference overlay has exactly the reference pod's ports and chain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mxrelay.config import Settings, graph_settings_problem, load_settings, options, parse_duration
from mxrelay.model import DeliveryMode
from tests.deploy.dockerfile import Dockerfile
from tests.deploy.manifests import (
    DOCKERFILE,
    OVERLAYS,
    Manifest,
    container,
    container_env,
    container_ports,
    containers,
    mounted_file,
    one,
    pod_ports,
    pod_spec,
    relay,
    relay_policies,
    resolve_port,
    secret_values,
)

# Outside mxrelay's table but read by the Python runtime it runs on (DESIGN.md: outbound HTTPS).
PROCESS_VARIABLES = {"SSL_CERT_FILE"}
GRAPH_OVERLAYS = ("standalone", "ha", "ha-cloudnative-pg")
EXIT_ALLOWANCE = 5
"""Seconds a container is given, beyond its preStop and its own drain, to exit after SIGTERM."""

# The reference pod (the seed's component table): container → its ports.
REFERENCE_PORTS = {
    "mxrelay": {25, 9090},
    "mailpit": {1025, 8025, 9091},
    "smtp2graph": {2525},
}


def known_variables() -> set[str]:
    names = set(PROCESS_VARIABLES)
    for option in options():
        names.add(option.env)
        names.update(option.aliases)
        if option.secret:
            names.add(option.env + "_FILE")
    return names


def relay_settings(objects: list[Manifest], tmp_path: Path) -> Settings:
    """mxrelay's settings in this overlay: the image's ENV, then the container's environment.

    A *_FILE variable must name a file mounted from a Secret key; the test writes that key's
    placeholder value to a temporary file and points the variable there.
    """
    deployment, mxrelay = relay(objects)
    dockerfile = Dockerfile.read(DOCKERFILE)
    image_env = dockerfile.env(dockerfile.final)
    env = {k: v for k, v in image_env.items() if k in known_variables()}
    for name, item in container_env(mxrelay, objects).items():
        value = item.value
        if name.endswith("_FILE"):
            found = mounted_file(deployment, mxrelay, value)
            assert found is not None, f"{name}={value} is not a file mounted from a Secret"
            volume, key = found
            secret = one(objects, "Secret", volume["secret"]["secretName"])
            stand_in = tmp_path / name
            stand_in.write_text(secret_values(secret)[key], encoding="utf-8")
            value = str(stand_in)
        env[name] = value
    return load_settings(env, hostname=lambda: "relay.example.net")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_is_one_mxrelay_knows(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    _, mxrelay = relay(overlays[overlay])
    unknown = set(container_env(mxrelay, overlays[overlay])) - known_variables()
    assert unknown == set()


def test_the_image_variables_are_ones_mxrelay_knows() -> None:
    dockerfile = Dockerfile.read(DOCKERFILE)
    env = dockerfile.env(dockerfile.final)
    ours = {name for name in env if not name.startswith(("PYTHON", "PATH"))}
    assert ours
    assert ours <= known_variables()
    load_settings({name: env[name] for name in ours}, hostname=lambda: "relay.example.net")


def test_the_known_variables_come_from_the_settings_table() -> None:
    """Control: a name outside the table is not known, a table name and a *_FILE variant are."""
    known = known_variables()
    assert "MXRELAY_SMTP_LISTEN" in known
    assert "LISTEN_ADDR" in known
    assert "MXRELAY_GRAPH_CLIENT_SECRET_FILE" in known
    assert "MXRELAY_GRAPH_TENANT_ID_FILE" not in known
    assert "MXRELAY_NO_SUCH_SETTING" not in known


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_settings_load_and_match_the_container_ports(
    overlays: dict[str, list[Manifest]], overlay: str, tmp_path: Path
) -> None:
    objects = overlays[overlay]
    deployment, mxrelay = relay(objects)
    settings = relay_settings(objects, tmp_path)
    ports = container_ports(mxrelay)
    assert settings.smtp.listen.port == ports["smtp"]
    assert settings.smtp.listen.host in ("0.0.0.0", "::")
    assert settings.web.metrics_listen.port == ports["metrics"]
    assert settings.web.metrics_listen.host in ("0.0.0.0", "::")
    if "http" in ports:
        assert settings.web.http_listen.port == ports["http"]
    else:  # the UI port belongs to another container: keep mxrelay's own UI on loopback
        assert settings.web.http_listen.host == "127.0.0.1"
        assert settings.web.http_listen.port not in pod_ports(deployment).values()


@pytest.mark.parametrize("overlay", GRAPH_OVERLAYS)
def test_graph_overlays_configure_graph_delivery_completely(
    overlays: dict[str, list[Manifest]], overlay: str, tmp_path: Path
) -> None:
    settings = relay_settings(overlays[overlay], tmp_path)
    assert settings.service.delivery is DeliveryMode.GRAPH
    assert graph_settings_problem(settings.graph) is None
    assert settings.graph.client_secret is not None
    assert settings.graph.mailbox


def pre_stop(item: Manifest) -> int:
    """Seconds a container's preStop sleep holds its SIGTERM back (0 without one)."""
    return int(item.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_the_prestop_pause_and_the_shutdown_deadline(
    overlays: dict[str, list[Manifest]], overlay: str, tmp_path: Path
) -> None:
    """terminationGracePeriodSeconds ≥ preStop + MXRELAY_SHUTDOWN_TIMEOUT (the deadline of the
    relay's whole stop) + time to exit, for mxrelay and for every container after it."""
    deployment, mxrelay = relay(overlays[overlay])
    deadline = relay_settings(overlays[overlay], tmp_path).service.shutdown_timeout
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert pre_stop(mxrelay) >= 5, "endpoints must drop the pod before SIGTERM"
    assert grace >= pre_stop(mxrelay) + deadline.total_seconds() + EXIT_ALLOWANCE
    assert deadline >= parse_duration("30s")
    for item in containers(deployment):
        assert grace >= pre_stop(item) + EXIT_ALLOWANCE, item["name"]


def test_the_reference_chain_stops_from_the_front(
    overlays: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    """Mailpit still accepts while mxrelay drains into it, smtp2graph while Mailpit relays."""
    deployment, mxrelay = relay(overlays["reference"])
    deadline = relay_settings(overlays["reference"], tmp_path).service.shutdown_timeout
    mailpit, smtp2graph = container(deployment, "mailpit"), container(deployment, "smtp2graph")
    assert pre_stop(mailpit) >= pre_stop(mxrelay) + deadline.total_seconds()
    assert pre_stop(smtp2graph) >= pre_stop(mailpit) + EXIT_ALLOWANCE


EXCHANGE_LIMITS = {
    # Exchange Online and Graph, per sending mailbox (graph-delivery.md): the pacing settings
    # that must not be exceeded by the deployment as a whole.
    "messages_per_minute": 30,
    "concurrency": 4,
    "requests_per_10_minutes": 10_000,
    "upload_bytes_per_5_minutes": 150_000_000,
    "daily_recipient_limit": 10_000,
}


def pods_at_once(deployment: Manifest) -> int:
    """Replicas, plus the extra pods a rolling update may start."""
    replicas = int(deployment["spec"]["replicas"])
    strategy = deployment["spec"].get("strategy", {})
    if strategy.get("type") == "Recreate":
        return replicas
    surge = strategy.get("rollingUpdate", {}).get("maxSurge", "25%")
    assert isinstance(surge, int), "an absolute maxSurge keeps the count of pods known"
    return replicas + surge


@pytest.mark.parametrize("overlay", GRAPH_OVERLAYS)
def test_pacing_stays_within_exchanges_limits_across_the_pods(
    overlays: dict[str, list[Manifest]], overlay: str, tmp_path: Path
) -> None:
    """Pods that can run at once pace together only through a shared PostgreSQL store (its pacing
    lanes); so a deployment of several pods must share one, and its limits are Exchange's, for all
    of them (0 would mean no limit at all)."""
    deployment, _ = relay(overlays[overlay])
    settings = relay_settings(overlays[overlay], tmp_path)
    for name, limit in EXCHANGE_LIMITS.items():
        value = getattr(settings.graph, name)
        assert 0 < value <= limit, f"{name}={value} > {limit}"
    if pods_at_once(deployment) > 1:
        assert settings.store.database_url.startswith("postgresql"), "replicas must share lanes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_port_reference_resolves(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    objects = overlays[overlay]
    deployment, _ = relay(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    named_ports = pod_ports(deployment)
    for item in containers(deployment):
        own = container_ports(item)
        assert all(port.get("name") for port in item.get("ports", [])), item["name"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in item:
                action = item[probe].get("httpGet") or item[probe].get("tcpSocket")
                resolve_port(action["port"], own)
    service = one(objects, "Service", "email-relay")
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    for port in service_ports.values():
        resolve_port(port["targetPort"], named_ports)
    monitor = one(objects, "ServiceMonitor", "email-relay")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
    for policy in relay_policies(objects):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        for rule in policy["spec"].get("ingress", []):
            for port in rule["ports"]:
                resolve_port(port["port"], named_ports)


def listeners(deployment: Manifest, objects: list[Manifest], tmp_path: Path) -> list[int]:
    """Every port something in the pod listens on (declared or configured), with repeats."""
    found = [int(p["containerPort"]) for c in containers(deployment) for p in c.get("ports", [])]
    settings = relay_settings(objects, tmp_path)
    configured = [settings.web.http_listen.port]
    if "http" in container_ports(container(deployment, "mxrelay")):
        found.remove(settings.web.http_listen.port)  # declared above already
    return found + configured


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_two_listeners_in_a_pod_share_a_port(
    overlays: dict[str, list[Manifest]], overlay: str, tmp_path: Path
) -> None:
    deployment, _ = relay(overlays[overlay])
    ports = listeners(deployment, overlays[overlay], tmp_path)
    assert len(ports) == len(set(ports)), sorted(ports)


def bind_port(value: str) -> int:
    match = re.fullmatch(r"(?:\[?[\w.:]*\]?):(\d+)", value)
    assert match, value
    return int(match.group(1))


def test_the_reference_overlay_has_the_reference_pods_ports_and_chain(
    overlays: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    objects = overlays["reference"]
    deployment, _ = relay(objects)
    declared = {
        item["name"]: set(container_ports(item).values()) for item in containers(deployment)
    }
    assert declared == REFERENCE_PORTS
    service = one(objects, "Service", "email-relay")
    assert {port["port"] for port in service["spec"]["ports"]} == {25, 8025, 9090, 9091}

    # mxrelay, configured with the validator's own variables, relays to Mailpit's SMTP port ...
    mxrelay_env = container_env(container(deployment, "mxrelay"), objects)
    assert {"LISTEN_ADDR", "UPSTREAM_HOST", "UPSTREAM_PORT"} <= set(mxrelay_env)
    settings = relay_settings(objects, tmp_path)
    assert settings.service.delivery is DeliveryMode.PASSTHROUGH
    assert settings.upstream.url is not None
    assert (settings.upstream.url.host, settings.upstream.url.port) == ("127.0.0.1", 1025)

    # ... Mailpit listens there, serves its UI and metrics, and relays everything to smtp2graph ...
    mailpit: dict[str, Any] = {
        e.name: e.value for e in container_env(container(deployment, "mailpit"), objects).values()
    }
    assert mailpit["MP_SMTP_BIND_ADDR"] == "127.0.0.1:1025"
    assert bind_port(mailpit["MP_UI_BIND_ADDR"]) == 8025
    assert bind_port(mailpit["MP_ENABLE_PROMETHEUS"]) == 9091
    assert mailpit["MP_SMTP_RELAY_ALL"] == "true"
    assert (mailpit["MP_SMTP_RELAY_HOST"], mailpit["MP_SMTP_RELAY_PORT"]) == ("127.0.0.1", "2525")

    # ... which listens on 2525, by its command line and by its configuration file.
    smtp2graph = container(deployment, "smtp2graph")
    assert "--receive.port=2525" in smtp2graph["command"]
    config = yaml.safe_load(
        secret_values(one(objects, "Secret", "smtp2graph-config"))["config.yml"]
    )
    assert config["receive"]["port"] == 2525
    assert config["mode"] == "full"
