"""NetworkPolicy: SMTP only from labelled client namespaces, the UI only from the ingress
controller, metrics only from monitoring; egress only to the cluster DNS and what the delivery
mode needs (HTTPS for Graph, PostgreSQL for ha), and never to an SMTP port."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.deploy.manifests import (
    OVERLAYS,
    Manifest,
    named,
    one,
    pod_ports,
    relay,
    relay_policies,
    resolve_port,
    selects,
)

CLIENTS = [{"namespaceSelector": {"matchLabels": {"email-relay/client": "true"}}}]
INGRESS_CONTROLLER = [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
CLUSTER_DNS = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
]
SMTP_PORTS = {25, 465, 587, 2525}
EGRESS_PORTS = {
    "standalone": {53, 443},
    "ha": {53, 443, 5432},
    "ha-cloudnative-pg": {53, 443, 5432},
    "reference": {53, 443},
}
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
PRIVATE.append(ipaddress.ip_network("169.254.0.0/16"))


def ingress_sources(objects: list[Manifest]) -> dict[int, list[Any]]:
    """Pod port → the `from` lists of every ingress rule that opens it."""
    deployment, _ = relay(objects)
    ports = pod_ports(deployment)
    opened: dict[int, list[Any]] = {}
    for policy in relay_policies(objects):
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: ingress from anywhere"
            assert rule.get("ports"), f"{policy['metadata']['name']}: ingress to every port"
            for port in rule["ports"]:
                opened.setdefault(resolve_port(port["port"], ports), []).append(rule["from"])
    return opened


def egress_rules(objects: list[Manifest]) -> list[dict[str, Any]]:
    return [rule for policy in relay_policies(objects) for rule in policy["spec"].get("egress", [])]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_relay_pods_are_isolated_both_ways(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    main = one(overlays[overlay], "NetworkPolicy", "email-relay")
    assert set(main["spec"]["policyTypes"]) == {"Ingress", "Egress"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_is_opened_per_port_to_the_right_namespaces(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    opened = ingress_sources(overlays[overlay])
    assert opened.pop(25) == [CLIENTS]
    assert opened.pop(8025) == [INGRESS_CONTROLLER]
    assert opened.pop(9090) == [MONITORING]
    if overlay == "reference":
        assert opened.pop(9091) == [MONITORING]
    assert opened == {}, "a port is open that no test accounts for"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_egress_goes_only_where_the_delivery_mode_needs(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    rules = egress_rules(overlays[overlay])
    allowed: set[int] = set()
    for rule in rules:
        assert rule.get("ports"), "an egress rule without ports opens every port"
        ports = {int(port["port"]) for port in rule["ports"]}
        assert not ports & SMTP_PORTS, f"outbound SMTP allowed: {rule}"
        if ports == {53}:
            assert rule["to"] == CLUSTER_DNS
        allowed |= ports
    assert allowed == EGRESS_PORTS[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_https_egress_never_reaches_private_or_link_local_addresses(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    https = [r for r in egress_rules(overlays[overlay]) if {p["port"] for p in r["ports"]} == {443}]
    assert len(https) == 1
    for peer in https[0]["to"]:
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        excepted = [ipaddress.ip_network(cidr) for cidr in block.get("except", [])]
        for private in PRIVATE:
            if private.version == network.version and private.subnet_of(network):  # type: ignore[arg-type]
                assert any(
                    private.subnet_of(e)  # type: ignore[arg-type]
                    for e in excepted
                    if e.version == private.version
                ), f"{private} reachable on 443"


def test_cloudnative_pg_narrows_database_egress_to_its_pods(
    overlays: dict[str, list[Manifest]],
) -> None:
    database = [
        r for r in egress_rules(overlays["ha-cloudnative-pg"]) if r["ports"][0]["port"] == 5432
    ]
    assert database == [
        {
            "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "email-relay-db"}}}],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        }
    ]


def test_cloudnative_pg_admits_only_mxrelay_the_operator_and_monitoring(
    overlays: dict[str, list[Manifest]],
) -> None:
    objects = overlays["ha-cloudnative-pg"]
    cluster = one(objects, "Cluster", "email-relay-db")
    database_pod = {
        "spec": {"template": {"metadata": {"labels": {"cnpg.io/cluster": "email-relay-db"}}}}
    }
    policies = [p for p in named(objects, "NetworkPolicy") if selects(p, database_pod)]
    assert [p["metadata"]["name"] for p in policies] == ["email-relay-db"]
    [policy] = policies
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    deployment, _ = relay(objects)
    relay_pods = {"podSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}
    instances = {"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster["metadata"]["name"]}}}
    opened = {
        int(port["port"]): rule["from"]
        for rule in policy["spec"]["ingress"]
        for port in rule["ports"]
    }
    assert opened == {
        5432: [relay_pods, instances],
        8000: [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}}}
        ],
        9187: MONITORING,
    }
    assert not any(selects(p, database_pod) for p in named(overlays["ha"], "NetworkPolicy"))
