"""The Dockerfile's build stage, run the same way against a clean virtual environment.

There is no container engine here, so this test interprets the build stage itself: COPY copies
from the repository, WORKDIR sets the directory, RUN runs with /bin/sh, with the image's paths
(/opt/mxrelay, /src) mapped into a build directory. BuildKit cache mounts are dropped; pip's own
cache stands in for them. Like Docker's layer cache, the state after a RUN is kept (under pytest's
cache directory) and reused while that instruction and everything before it, copied files
included, are unchanged; the stage's last instruction (installing mxrelay itself) always runs.
Then the final stage's ENTRYPOINT is started from that environment with the image's ENV (ports
moved to free loopback ports, SMTP's by the reference validator's LISTEN_ADDR) and its
HEALTHCHECK command must report healthy. What stays
unchecked: the base image's own contents and the multi-arch build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Dockerfile, Instruction, exec_form, substitute
from tests.deploy.manifests import DOCKERFILE, ROOT
from tests.support.processes import free_port, wait_for_port

pytestmark = pytest.mark.slow

IMAGE_PATHS = ("/opt/mxrelay", "/src", "/var/lib/mxrelay")


class BuildStage:
    """Runs one stage's COPY/WORKDIR/RUN instructions with the image's paths under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = root
        shims = root / "shims"
        shims.mkdir(parents=True, exist_ok=True)
        if not (shims / "python").is_symlink():
            (shims / "python").symlink_to(sys.executable)
        self.env = {
            "PATH": f"{shims}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", str(root)),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
        }

    def path(self, image_path: str) -> Path:
        if not image_path.startswith("/"):
            return self.cwd / image_path
        return self.root / image_path.lstrip("/")

    def map_paths(self, text: str) -> str:
        for image_path in IMAGE_PATHS:
            text = re.sub(
                rf"(?<![\w/]){re.escape(image_path)}(?=[/\s]|$)", str(self.path(image_path)), text
            )
        return text

    def workdir(self, arguments: str) -> None:
        self.cwd = self.path(arguments.strip())
        self.cwd.mkdir(parents=True, exist_ok=True)

    def copy(self, arguments: str) -> None:
        words = arguments.split()
        assert not any(word.startswith("--") for word in words), f"unsupported COPY: {arguments}"
        *sources, destination = words
        target = self.path(destination)
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                )
            else:
                dest = (
                    target / origin.name if destination.endswith("/") or target.is_dir() else target
                )
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, dest)

    def run(self, arguments: str) -> None:
        command = re.sub(r"--mount=\S+\s*", "", arguments)
        result = subprocess.run(
            ["/bin/sh", "-c", self.map_paths(command)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"RUN {command}\n{result.stdout}\n{result.stderr}"


def layer_keys(instructions: list[Instruction]) -> list[str]:
    """Docker-style cache keys: each covers its instruction, the files it copies, and all before."""
    digest = hashlib.sha256(sys.executable.encode())
    keys = []
    for item in instructions:
        digest.update(f"{item.keyword} {item.arguments}\n".encode())
        if item.keyword == "COPY":
            for source in item.arguments.split()[:-1]:
                origin = ROOT / source
                files = (
                    sorted(p for p in origin.rglob("*") if p.is_file())
                    if origin.is_dir()
                    else [origin]
                )
                for file in files:
                    if (
                        "__pycache__" in file.parts
                        or file.suffix == ".pyc"
                        or ".egg-info" in str(file)
                    ):
                        continue
                    digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
        keys.append(digest.hexdigest()[:16])
    return keys


@pytest.fixture(scope="module")
def built(pytestconfig: pytest.Config) -> tuple[Dockerfile, BuildStage]:
    dockerfile = Dockerfile.read(DOCKERFILE)
    image_python = re.search(r"python:(\d+)\.(\d+)", dockerfile.stage("build").base)
    assert image_python is not None
    if sys.version_info[:2] != (int(image_python.group(1)), int(image_python.group(2))):
        pytest.skip(f"the image uses Python {image_python.group(1)}.{image_python.group(2)}")
    assert pytestconfig.cache is not None
    cache = Path(pytestconfig.cache.mkdir("mxrelay-image"))
    root = cache / "build"  # a fixed path: a virtual environment cannot move
    instructions = dockerfile.stage("build").instructions
    keys = layer_keys(instructions)
    start = 0
    shutil.rmtree(root, ignore_errors=True)
    for index in reversed(range(len(instructions) - 1)):
        layer = cache / f"layer-{index}-{keys[index]}"
        if instructions[index].keyword == "RUN" and layer.is_dir():
            shutil.copytree(layer, root, symlinks=True)
            start = index + 1
            break
    stage = BuildStage(root)
    handlers = {"WORKDIR": stage.workdir, "COPY": stage.copy, "RUN": stage.run}
    for index, item in enumerate(instructions):
        assert item.keyword in handlers, f"line {item.line}: {item.keyword} is not emulated"
        if index < start and item.keyword != "WORKDIR":
            continue
        handlers[item.keyword](item.arguments)
        if item.keyword == "RUN" and index >= start and index < len(instructions) - 1:
            for stale in cache.glob("layer-*"):  # keep only the deepest layer
                shutil.rmtree(stale)
            shutil.copytree(root, cache / f"layer-{index}-{keys[index]}", symlinks=True)
    return dockerfile, stage


def test_the_build_stage_installs_mxrelay_and_only_the_locked_packages(
    built: tuple[Dockerfile, BuildStage],
) -> None:
    _, stage = built
    pip = stage.path("/opt/mxrelay") / "bin" / "pip"
    frozen = subprocess.run(
        [str(pip), "freeze", "--all"], capture_output=True, text=True, check=True, timeout=120
    ).stdout.lower()
    lock = (ROOT / "deploy" / "image" / "requirements.txt").read_text(encoding="utf-8").lower()
    for pin in (line for line in lock.splitlines() if line and not line.startswith("#")):
        assert pin.replace("_", "-") in frozen.replace("_", "-"), pin
    assert re.search(r"^mxrelay( @ |==)", frozen, re.M)
    assert not re.search(r"^(pytest|mypy|ruff|hypothesis)\b", frozen, re.M), "test tools leaked in"


def test_the_entrypoint_serves_and_the_healthcheck_reports_healthy(
    built: tuple[Dockerfile, BuildStage], tmp_path: Path
) -> None:
    dockerfile, stage = built
    final = dockerfile.final
    env = {
        key: stage.map_paths(substitute(value, {"PATH": stage.env["PATH"]}))
        for key, value in dockerfile.env(final).items()
    }
    smtp, metrics, http = free_port(), free_port(), free_port()
    env |= {
        "HOME": str(tmp_path),
        # The reference validator's own variables, as a drop-in replacement keeps them.
        "LISTEN_ADDR": f"127.0.0.1:{smtp}",
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(free_port()),
        "MXRELAY_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        "MXRELAY_HTTP_LISTEN": f"127.0.0.1:{http}",
        "MXRELAY_DNS_SERVERS": f"127.0.0.1:{free_port()}",
        "MXRELAY_HOSTNAME": "relay.example.net",
    }
    workdir = stage.path(dockerfile.one(final, "WORKDIR").arguments)
    workdir.mkdir(parents=True, exist_ok=True)
    entrypoint = [
        stage.map_paths(word) for word in exec_form(dockerfile.one(final, "ENTRYPOINT").arguments)
    ]
    healthcheck = dockerfile.one(final, "HEALTHCHECK").arguments
    probe = [stage.map_paths(w) for w in exec_form(healthcheck[healthcheck.index("CMD") + 3 :])]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        entrypoint, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(metrics, timeout=30, process=process)
        wait_for_port(smtp, timeout=30, process=process)  # where LISTEN_ADDR says, not port 25
        healthy = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
        assert healthy.returncode == 0, healthy.stderr
        stopped_env = env | {"MXRELAY_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
        unhealthy = subprocess.run(probe, env=stopped_env, capture_output=True, timeout=30)
        assert unhealthy.returncode != 0, "the health check must fail when nothing answers"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()
