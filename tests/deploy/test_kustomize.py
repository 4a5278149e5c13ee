"""Every overlay renders with `kubectl kustomize`, and each has the shape its name promises."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    KUBERNETES,
    OVERLAYS,
    Manifest,
    container,
    container_env,
    containers,
    mounted_file,
    named,
    one,
    pod_spec,
    relay,
    render,
    secret_values,
)

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def test_every_overlay_folder_is_rendered_by_the_tests() -> None:
    on_disk = {path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir()}
    assert on_disk == set(OVERLAYS)


def test_the_base_alone_renders() -> None:
    objects = render(KUBERNETES / "base")
    kinds = {obj["kind"] for obj in objects}
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "ServiceMonitor"} <= kinds
    assert {"PrometheusRule", "ConfigMap", "ServiceAccount"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_the_email_relay_namespace(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    for obj in overlays[overlay]:
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        assert obj["metadata"].get("namespace") == "email-relay", obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "email-relay"
    namespace = one(overlays[overlay], "Namespace")
    assert namespace["metadata"]["name"] == "email-relay"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_is_email_relay_with_smtp_ui_and_metrics(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    service = one(overlays[overlay], "Service", "email-relay")
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert ports["smtp"] == 25
    assert ports["http"] == 8025
    assert ports["metrics"] == 9090
    deployment, _ = relay(overlays[overlay])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_standalone_is_one_graph_relay_on_sqlite_with_a_volume(
    overlays: dict[str, list[Manifest]],
) -> None:
    objects = overlays["standalone"]
    deployment, mxrelay = relay(objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert [c["name"] for c in pod_spec(deployment)["containers"]] == ["mxrelay"]
    env = container_env(mxrelay, objects)
    assert env["MXRELAY_DELIVERY"].value == "graph"
    url = env["MXRELAY_DATABASE_URL"].value
    assert url.startswith("sqlite:////var/lib/mxrelay/")
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert set(volumes["data"]) == {"name", "persistentVolumeClaim"}
    one(objects, "PersistentVolumeClaim", claim)
    mounts = {m["name"]: m["mountPath"] for m in mxrelay["volumeMounts"]}
    assert url.removeprefix("sqlite:///").startswith(mounts["data"] + "/")


@pytest.mark.parametrize("overlay", ["ha", "ha-cloudnative-pg"])
def test_ha_runs_replicas_on_one_postgresql_database(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = overlays[overlay]
    deployment, mxrelay = relay(objects)
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    # A new pod before an old one stops: every replica serves throughout an upgrade, and the extra
    # pod paces Graph with the others through the shared store (test_consistency.py).
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    env = container_env(mxrelay, objects)
    assert env["MXRELAY_DELIVERY"].value == "graph"
    assert env["MXRELAY_DATABASE_URL"].source == "secret"
    pdb = one(objects, "PodDisruptionBudget")
    assert 1 <= pdb["spec"]["minAvailable"] < replicas
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    anti = pod_spec(deployment)["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    assert not named(objects, "PersistentVolumeClaim"), "replicas share PostgreSQL, not a volume"


def test_ha_reads_the_database_url_from_the_external_database_secret(
    overlays: dict[str, list[Manifest]],
) -> None:
    env = container_env(relay(overlays["ha"])[1], overlays["ha"])
    assert env["MXRELAY_DATABASE_URL"].value.startswith("postgresql://")
    assert not named(overlays["ha"], "Cluster")


def test_ha_cloudnative_pg_uses_the_operators_secret_and_drops_the_template(
    overlays: dict[str, list[Manifest]],
) -> None:
    objects = overlays["ha-cloudnative-pg"]
    cluster = one(objects, "Cluster", "email-relay-db")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] >= 2
    _, mxrelay = relay(objects)
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in mxrelay["env"]
        if e["name"] == "MXRELAY_DATABASE_URL"
    ]
    assert refs == [{"name": "email-relay-db-app", "key": "uri"}]
    assert not named(objects, "Secret", "email-relay-database")


def test_reference_is_the_three_container_pod(overlays: dict[str, list[Manifest]]) -> None:
    objects = overlays["reference"]
    deployment, _ = relay(objects)
    images = {c["name"]: c["image"] for c in pod_spec(deployment)["containers"]}
    assert images["mailpit"] == "axllent/mailpit:v1.28.3"
    assert images["smtp2graph"] == "smtp2graph/smtp2graph:v1.1.4"
    assert images["mxrelay"].endswith("mxrelay:0.1.0")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    mailpit = container(deployment, "mailpit")
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    data_mount = next(m for m in mailpit["volumeMounts"] if m["mountPath"] == "/data")
    claim = volumes[data_mount["name"]]["persistentVolumeClaim"]["claimName"]
    one(objects, "PersistentVolumeClaim", claim)
    assert not named(objects, "PodDisruptionBudget")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_to_a_tag(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    deployment, _ = relay(overlays[overlay])
    for item in pod_spec(deployment)["containers"]:
        image = item["image"]
        name, _, tag = image.rpartition(":")
        assert name, image
        assert "/" not in tag, image
        assert tag not in ("", "latest"), image


PRUNE_DISABLED = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
KEPT_BY_FLUX = {"Namespace", "PersistentVolumeClaim", "Cluster"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flux_never_prunes_the_namespace_or_the_data(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    """The Flux Kustomization prunes (test_flux.py): renaming or removing it must not delete the
    namespace, the volumes or the database cluster, and with them the queue and the log."""
    kept = [obj for obj in overlays[overlay] if obj["kind"] in KEPT_BY_FLUX]
    assert {obj["kind"] for obj in kept} >= {"Namespace"}
    for obj in kept:
        annotations = obj["metadata"].get("annotations", {})
        assert annotations.items() >= PRUNE_DISABLED.items(), (obj["kind"], obj["metadata"]["name"])
    others = [obj for obj in overlays[overlay] if obj["kind"] not in KEPT_BY_FLUX]
    assert not [
        o for o in others if PRUNE_DISABLED.items() <= o["metadata"].get("annotations", {}).items()
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_volume_is_used_and_bounded(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    """No volume a container does not mount; no emptyDir without a size limit (it counts against
    the node's disk)."""
    deployment, _ = relay(overlays[overlay])
    mounted = {m["name"] for item in containers(deployment) for m in item.get("volumeMounts", [])}
    for volume in pod_spec(deployment)["volumes"]:
        assert volume["name"] in mounted, f"{volume['name']} is mounted by no container"
        if "emptyDir" in volume:
            assert volume["emptyDir"].get("sizeLimit"), volume["name"]


@pytest.mark.parametrize("overlay", ["ha", "ha-cloudnative-pg", "reference"])
def test_relays_without_a_local_store_mount_no_data_volume(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    _, mxrelay = relay(overlays[overlay])
    secrets = {"/run/secrets/graph", "/run/secrets/ui"}
    assert {m["mountPath"] for m in mxrelay["volumeMounts"]} <= {"/tmp", *secrets}


@pytest.mark.parametrize("overlay", ["standalone", "ha", "ha-cloudnative-pg"])
def test_the_web_ui_on_the_pods_address_asks_for_mxrelays_login(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    """The UI listens on the pod's address, so it has users (a mounted Secret's file, as
    MXRELAY_UI_AUTH_FILE) and names its operators among them."""
    objects = overlays[overlay]
    deployment, mxrelay = relay(objects)
    env = container_env(mxrelay, objects)
    assert env["MXRELAY_HTTP_LISTEN"].value == "0.0.0.0:8025"
    path = env["MXRELAY_UI_AUTH_FILE"].value
    found = mounted_file(deployment, mxrelay, path)
    assert found is not None
    volume, key = found
    users = secret_values(one(objects, "Secret", volume["secret"]["secretName"]))[key]
    names = {line.split(":", 1)[0] for line in users.splitlines() if line.strip()}
    assert set(env["MXRELAY_UI_OPERATORS"].value.split(",")) <= names
