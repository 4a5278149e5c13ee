"""Secrets: SOPS-ready templates with placeholders only, a .sops.yaml that encrypts nothing but
`data`/`stringData`, and no secret value anywhere else in the manifests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mxrelay.config import options
from tests.deploy.manifests import DEPLOY, OVERLAYS, Manifest, load_yaml_documents, named, relay

PLACEHOLDER = "REPLACE_ME"
TEMPLATES = sorted(DEPLOY.rglob("*.enc.yaml"))
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/:@]+:[^@/]+@", re.IGNORECASE)


def test_there_are_templates() -> None:
    names = {path.name for path in TEMPLATES}
    assert {"secret-graph.enc.yaml", "secret-database.enc.yaml"} <= names
    assert {"secret-smtp2graph-config.enc.yaml", "secret-mailpit-auth.enc.yaml"} <= names


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
