"""The alert rules as a plain Prometheus rules file: `make rules` writes
deploy/kubernetes/base/monitoring/rules.yaml from the PrometheusRule beside it, so that
`promtool test rules alerts.test.yaml` runs in that folder as shipped. test_alerts.py checks that
the committed file is the current extract.

The extract is the PrometheusRule's `spec` as it is written in prometheusrule.yaml, runbook links
relative to the repository included (what the unit tests expect); a cluster gets the links that
the mxrelay-runbooks annotation names, through Kustomize.
"""

from __future__ import annotations

import sys

import yaml

from tests.deploy.manifests import MONITORING, load_yaml_documents

RULES_FILE = MONITORING / "rules.yaml"
HEADER = (
    "# Generated from prometheusrule.yaml by `make rules`; do not edit (a test compares them).\n"
    "# The plain Prometheus rules file that alerts.test.yaml runs on:\n"
    "#   promtool check rules rules.yaml && promtool test rules alerts.test.yaml\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as literal blocks, as they are written by hand."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def plain_rules() -> str:
    """The text rules.yaml must hold."""
    [rule] = load_yaml_documents(MONITORING / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    body = yaml.dump(
        {"groups": rule["spec"]["groups"]},
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
    )
    return HEADER + body


def main() -> int:
    RULES_FILE.write_text(plain_rules(), encoding="utf-8")
    sys.stdout.write(f"wrote {RULES_FILE.relative_to(MONITORING.parents[3])}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
