"""Dockerfile rules checked without a container engine (there is none to build with here):
pinned base images, a non-root numeric USER matching the pods, no secrets baked in, exec forms
only (no shell needed at run time), HEALTHCHECK on /healthz, `mxrelay serve` as ENTRYPOINT, OCI
labels, a build context limited by .dockerignore, and a dependency lock that matches pyproject."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mxrelay.config import Settings, load_settings
from tests.deploy.dockerfile import Dockerfile, Instruction, exec_form, parse_env
from tests.deploy.manifests import DOCKERFILE, OVERLAYS, ROOT, Manifest, pod_spec, relay

LOCK = ROOT / "deploy" / "image" / "requirements.txt"
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY", re.I)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(DOCKERFILE)


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_base_images_are_pinned(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2, "multi-stage: build tools stay out of the image"
    for stage in dockerfile.stages:
        image = stage.base
        if "@sha256:" in image:
            assert re.fullmatch(r".+@sha256:[0-9a-f]{64}", image), image
            continue
        name, _, tag = image.rpartition(":")
        assert name, f"{image} has no tag"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image}: pin a full version tag or a digest"


def test_the_image_runs_as_the_non_root_user_the_pods_expect(
    dockerfile: Dockerfile, overlays: dict[str, list[Manifest]]
) -> None:
    user = dockerfile.one(dockerfile.final, "USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    assert int(uid) != 0
    assert gid.isdigit()
    for overlay in OVERLAYS:
        deployment, _ = relay(overlays[overlay])
        context = pod_spec(deployment)["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))


def test_no_secret_is_baked_in(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        for item in stage.instructions:
            if item.keyword == "ENV":
                for name in parse_env(item.arguments):
                    assert not SECRET_WORDS.search(name), f"line {item.line}: ENV {name}"
            if item.keyword == "ARG":
                name = item.arguments.partition("=")[0]
                assert not SECRET_WORDS.search(name), f"line {item.line}: ARG {name}"
            if item.keyword in ("COPY", "ADD"):
                assert item.keyword == "COPY", f"line {item.line}: ADD fetches or unpacks"
                for source in copy_sources(item):
                    assert not re.search(r"\.env$|\.pem$|\.key$|id_rsa|\.agekey$", source)


def copy_sources(item: Instruction) -> list[str]:
    """The context paths a COPY reads (none for COPY --from=another-stage)."""
    words = item.arguments.split()
    if any(word.startswith("--from=") for word in words):
        return []
    words = [word for word in words if not word.startswith("--")]
    return words[:-1]


def test_run_time_needs_no_shell(dockerfile: Dockerfile) -> None:
    entrypoint = exec_form(dockerfile.one(dockerfile.final, "ENTRYPOINT").arguments)
    assert Path(entrypoint[0]).name == "mxrelay"
    assert entrypoint[1:] == ["serve"]
    healthcheck = dockerfile.one(dockerfile.final, "HEALTHCHECK").arguments
    command = exec_form(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert "/healthz" in " ".join(command)
    assert not [i for i in dockerfile.final.instructions if i.keyword == "CMD"]
    assert dockerfile.one(dockerfile.final, "STOPSIGNAL").arguments == "SIGTERM"


def image_settings(dockerfile: Dockerfile, deployment: dict[str, str]) -> Settings:
    """mxrelay's settings in a container: the image's ENV, replaced name by name by the
    deployment's environment (as Docker and Kubernetes do)."""
    return load_settings(dockerfile.env(dockerfile.final) | deployment, hostname=lambda: "relay")


def test_the_image_listens_where_it_says(dockerfile: Dockerfile) -> None:
    """SMTP and metrics on every interface; the web UI and API on loopback until the deployment
    gives it users (or states a proxy in front) and the address to listen on."""
    settings = image_settings(dockerfile, {})
    exposed = {int(port) for port in dockerfile.one(dockerfile.final, "EXPOSE").arguments.split()}
    listen = [settings.smtp.listen, settings.web.http_listen, settings.web.metrics_listen]
    assert exposed == {address.port for address in listen} == {25, 8025, 9090}
    assert settings.smtp.listen.host == settings.web.metrics_listen.host == "0.0.0.0"
    assert settings.web.http_listen.host == "127.0.0.1"
    with_users = image_settings(
        dockerfile,
        {"MXRELAY_HTTP_LISTEN": "0.0.0.0:8025", "MXRELAY_UI_AUTH_FILE": "/run/secrets/ui/users"},
    )
    assert str(with_users.web.http_listen) == "0.0.0.0:8025"
    volume = dockerfile.one(dockerfile.final, "VOLUME").arguments
    assert settings.store.database_url.removeprefix("sqlite:///").rpartition("/")[0] in volume


REFERENCE_ENVIRONMENTS = [
    {"LISTEN_ADDR": ":2526"},
    {"LISTEN_ADDR": "127.0.0.1:2526", "UPSTREAM_HOST": "127.0.0.1", "UPSTREAM_PORT": "1025"},
    {"UPSTREAM_HOST": "mailpit.example.net"},
    {"LISTEN_ADDR": ":2526", "MXRELAY_SMTP_LISTEN": "0.0.0.0:2527"},
    {"MXRELAY_SMTP_LISTEN": "[::]:2527"},
]


@pytest.mark.parametrize("deployment", REFERENCE_ENVIRONMENTS, ids=lambda env: " ".join(env))
def test_the_reference_variables_work_in_the_image_as_outside_it(
    dockerfile: Dockerfile, deployment: dict[str, str]
) -> None:
    """A drop-in for the reference validator keeps its LISTEN_ADDR/UPSTREAM_HOST/UPSTREAM_PORT:
    the image's defaults must rank below them, as mxrelay's own defaults do outside the image."""
    inside = image_settings(dockerfile, deployment)
    outside = load_settings(deployment, hostname=lambda: "relay")
    if {"LISTEN_ADDR", "MXRELAY_SMTP_LISTEN"} & set(deployment):
        assert inside.smtp.listen == outside.smtp.listen
    else:  # nothing said where: the image's own default, port 25 on every interface
        assert str(inside.smtp.listen) == "0.0.0.0:25"
    assert inside.upstream.url == outside.upstream.url
    assert inside.service.delivery == outside.service.delivery


def test_oci_labels_and_version(dockerfile: Dockerfile) -> None:
    labels = " ".join(i.arguments for i in dockerfile.final.instructions if i.keyword == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    args = {
        i.arguments.partition("=")[0]: i.arguments.partition("=")[2]
        for i in dockerfile.final.instructions
        if i.keyword == "ARG"
    }
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert args["VERSION"] == project["version"]


def glob_regex(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `**/` any directories, `*` and `?` within one name."""
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + "$")


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = glob_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_the_build_context_holds_what_the_build_copies_and_nothing_private(
    dockerfile: Dockerfile,
) -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for stage in dockerfile.stages:
        for item in stage.instructions:
            if item.keyword != "COPY":
                continue
            for source in copy_sources(item):
                files = [p for p in (ROOT / source).rglob("*") if p.is_file()] or [ROOT / source]
                for file in files:
                    relative = file.relative_to(ROOT).as_posix()
                    if re.search(r"__pycache__|\.pyc$|\.egg-info/", relative):
                        continue  # build by-products, excluded on purpose
                    assert not dockerignore_excludes(relative, patterns), relative
    for private in (".git/config", ".venv/bin/python", "data/mxrelay.db", "tests/conftest.py"):
        assert dockerignore_excludes(private, patterns), private
    assert dockerignore_excludes("src/mxrelay/__pycache__/app.cpython-311.pyc", patterns)


def lock_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"not an exact pin: {line}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_lock_pins_every_runtime_dependency_within_its_bounds() -> None:
    pins = lock_pins()
    project = pyproject()["project"]
    assert isinstance(project, dict)
    for text in project["dependencies"]:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(
            {"sys_platform": "linux"}
        ):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is missing from {LOCK.name}"
        assert pins[name] in requirement.specifier, f"{name}=={pins[name]} not {requirement}"
    assert "mxrelay" not in pins


def test_the_build_installs_the_lock_without_resolving(dockerfile: Dockerfile) -> None:
    runs = [i.arguments for i in dockerfile.stage("build").instructions if i.keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 2
    assert all("--no-deps" in run for run in installs)
    assert "--requirement deploy/image/requirements.txt" in installs[0]
    assert "--only-binary=:all:" in installs[0]
    assert any("pip check" in run for run in runs)
