"""Values: bad combinations fail at render time with their sentence, the schema refuses unknown
keys and wrong types, and every value is documented."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.processes import REPO_ROOT
from tests.chart.rendering import CHART_DIR, render_error, template

POSTGRES = "receiver.database.url=postgresql://u:p@db:5432/receiver"


@pytest.mark.parametrize(
    ("sets", "sentence"),
    [
        (
            ["receiver.replicas=2"],
            "The receiver may run 2 pods but has no PostgreSQL database, and SQLite cannot be "
            "shared between pods; set `receiver.database.url` or "
            "`receiver.database.existingSecret.name`, or run one pod.",
        ),
        (
            ["receiver.autoscaling.enabled=true", "receiver.replicas=1"],
            "The receiver may run 5 pods but has no PostgreSQL database",
        ),
        (
            [POSTGRES, "receiver.database.existingSecret.name=db"],
            "`receiver.database.url` and `receiver.database.existingSecret.name` are both set; "
            "set only one of them.",
        ),
        (
            ["receiver.database.url=mysql://db/receiver"],
            "`receiver.database.url` must be a PostgreSQL URL starting with 'postgresql://'",
        ),
        (
            [
                POSTGRES,
                "receiver.autoscaling.enabled=true",
                "receiver.autoscaling.minReplicas=4",
                "receiver.autoscaling.maxReplicas=3",
            ],
            "`receiver.autoscaling.minReplicas` must not be greater than "
            "`receiver.autoscaling.maxReplicas`.",
        ),
        (
            ["receiver.ingress.enabled=true"],
            "`receiver.ingress.enabled` is true but `receiver.ingress.host` is empty",
        ),
        (
            [
                "operator.podDisruptionBudget.enabled=true",
                "operator.podDisruptionBudget.minAvailable=1",
                "operator.podDisruptionBudget.maxUnavailable=1",
            ],
            "`operator.podDisruptionBudget.minAvailable` and "
            "`operator.podDisruptionBudget.maxUnavailable` are both set",
        ),
    ],
)
def test_bad_combination_fails_with_its_sentence(sets: list[str], sentence: str) -> None:
    assert sentence in render_error(sets=sets)


def test_dashboards_without_the_file_fail_with_a_sentence(tmp_path: Path) -> None:
    chart = tmp_path / "stripe-webhook-operator"
    shutil.copytree(CHART_DIR, chart, ignore=shutil.ignore_patterns("dashboards"))
    result = template(sets=["dashboards.enabled=true"], chart=chart, check=False)
    assert result.returncode != 0
    assert "`dashboards.enabled` is true but the chart has no dashboards/stripe-webhook.json" in (
        result.stderr
    )


def test_prometheus_rule_without_the_file_fails_with_a_sentence(tmp_path: Path) -> None:
    chart = tmp_path / "stripe-webhook-operator"
    shutil.copytree(CHART_DIR, chart, ignore=shutil.ignore_patterns("alerts"))
    result = template(sets=["prometheusRule.enabled=true"], chart=chart, check=False)
    assert result.returncode != 0
    assert (
        "`prometheusRule.enabled` is true but the chart has no alerts/stripe-webhook-rules.yaml"
        in result.stderr
    )


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("replicas=2", "replicas"),
        ("operator.replica=2", "replica"),
        ("receiver.database.sqlite.persistence.sise=2Gi", "sise"),
        ("receiver.ingress.tls=true", "tls"),
        ("networkPolicy.egress=true", "egress"),
        ("prometheusRule.groups=x", "groups"),
        ("receiver.http.maxConnection=3", "maxConnection"),
    ],
)
def test_schema_refuses_unknown_keys(assignment: str, key: str) -> None:
    error = render_error(sets=[assignment])
    assert "additional properties" in error.lower() or "additionalproperties" in error.lower()
    assert key in error


@pytest.mark.parametrize(
    "assignment",
    [
        "operator.replicas=two",
        "receiver.port=0",
        "image.pullPolicy=Sometimes",
        "crds.keep=maybe",
        "operator.podSecurityContext.seccompProfile.type=Unconfined2",
        "publicBaseUrl=hooks.example.com",
        "watchNamespaces[0]=Billing_Team",
        "receiver.http.clientTimeout=ten",
        "receiver.http.maxConnections=0",
        "receiver.podDisruptionBudget.enabled=maybe",
    ],
)
def test_schema_refuses_wrong_types_and_values(assignment: str) -> None:
    assert "values don't meet the specifications of the schema" in render_error(sets=[assignment])


def _leaf_paths(values: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def _schema_accepts_path(schema: dict[str, Any], path: str) -> bool:
    definitions = schema["definitions"]
    node = schema
    for part in path.split("."):
        while "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[1]]
        properties = node.get("properties", {})
        if part in properties:
            node = properties[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
LEAVES = list(_leaf_paths(VALUES))


@pytest.mark.parametrize("path", LEAVES)
def test_every_value_is_in_the_schema(path: str) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert _schema_accepts_path(schema, path)


# Kubernetes objects passed through whole are documented as one value, not field by field.
PASSED_THROUGH = {
    "resources",
    "podSecurityContext",
    "containerSecurityContext",
    "livenessProbe",
    "readinessProbe",
    "labels",
}


def _documented_as(path: str) -> str:
    parts = path.split(".")
    for index, part in enumerate(parts):
        if part in PASSED_THROUGH:
            return ".".join(parts[: index + 1])
    return path


@pytest.mark.parametrize("path", LEAVES)
def test_every_value_is_documented(path: str) -> None:
    reference = (REPO_ROOT / "docs" / "helm.md").read_text()
    assert f"| `{_documented_as(path)}` |" in reference
