"""Every pod meets the "restricted" Pod Security Standard, runs port 25 without root or
capabilities, has probes and resources, and mounts every path it writes to."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    OVERLAYS,
    Manifest,
    container,
    container_env,
    containers,
    one,
    pod_spec,
    relay,
)

# Kubernetes' "safe" sysctls, allowed by the baseline and restricted Pod Security Standards.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_problems(deployment: Manifest) -> list[str]:
    """What in this pod the restricted Pod Security Standard would refuse."""
    pod = pod_spec(deployment)
    problems = []
    security = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(host)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    for sysctl in security.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']}")
    for item in containers(deployment):
        context = item.get("securityContext", {})
        name = item["name"]
        if not (context.get("runAsNonRoot", security.get("runAsNonRoot"))):
            problems.append(f"{name}: runAsNonRoot")
        if context.get("runAsUser", security.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as root")
        seccomp = context.get("seccompProfile", security.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities not dropped")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    deployment, _ = relay(overlays[overlay])
    assert restricted_problems(deployment) == []
    namespace = one(overlays[overlay], "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_check_finds_what_restricted_refuses(overlays: dict[str, list[Manifest]]) -> None:
    """Control: a root, privileged, capability-holding pod with a host path is refused."""
    deployment, _ = relay(overlays["standalone"])
    bad: Manifest = {
        "spec": {
            "template": {
                "spec": {
                    "hostNetwork": True,
                    "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]},
                    "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
                    "containers": [
                        {
                            "name": "x",
                            "securityContext": {
                                "runAsUser": 0,
                                "privileged": True,
                                "capabilities": {"add": ["SYS_ADMIN"]},
                            },
                        }
                    ],
                }
            }
        }
    }
    problems = restricted_problems(bad)
    assert len(problems) == 10, problems
    assert restricted_problems(deployment) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_needs_root_or_a_capability_for_its_ports(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    deployment, _ = relay(overlays[overlay])
    pod = pod_spec(deployment)
    sysctls = {s["name"]: int(s["value"]) for s in pod["securityContext"].get("sysctls", [])}
    unprivileged_from = sysctls.get("net.ipv4.ip_unprivileged_port_start", 1024)
    for item in containers(deployment):
        assert "add" not in item["securityContext"].get("capabilities", {}), item["name"]
        for port in item.get("ports", []):
            assert port["containerPort"] >= unprivileged_from, (item["name"], port)
    assert unprivileged_from == 25


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_root_file_systems_are_read_only_and_writable_paths_mounted(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = overlays[overlay]
    deployment, mxrelay = relay(objects)
    for item in containers(deployment):
        assert item["securityContext"]["readOnlyRootFilesystem"] is True, item["name"]
    mounts = {mount["mountPath"] for mount in mxrelay["volumeMounts"]}
    assert "/tmp" in mounts
    url = container_env(mxrelay, objects).get("MXRELAY_DATABASE_URL")
    if url is not None and url.value.startswith("sqlite:"):
        directory = url.value.removeprefix("sqlite:///").rpartition("/")[0]
        assert directory in mounts
    if overlay == "reference":
        assert "/data" in {m["mountPath"] for m in container(deployment, "mailpit")["volumeMounts"]}
        smtp2graph = container(deployment, "smtp2graph")
        assert smtp2graph["workingDir"] in {m["mountPath"] for m in smtp2graph["volumeMounts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_have_resources_and_probes(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    deployment, mxrelay = relay(overlays[overlay])
    for item in containers(deployment):
        resources = item["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), item["name"]
        assert "memory" in resources["limits"], item["name"]
        assert "readinessProbe" in item, item["name"]
    assert mxrelay["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert mxrelay["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert mxrelay["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_holds_no_kubernetes_credentials(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    deployment, _ = relay(overlays[overlay])
    assert pod_spec(deployment)["automountServiceAccountToken"] is False
    account = one(overlays[overlay], "ServiceAccount", pod_spec(deployment)["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
