"""The Grafana dashboard shipped in the chart: it parses, covers what operators watch, and
queries only series the receiver and the operator really export on /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.processes import REPO_ROOT
from devstack.project.objects import apply_crd
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import ReceiverProcess

DASHBOARD = REPO_ROOT / "charts" / "stripe-webhook-operator" / "dashboards" / "stripe-webhook.json"
METRIC = re.compile(r"\b(stripe_webhook_(?:receiver|operator)_[a-z0-9_]+)")
# Series each family type exposes, after the family name prometheus_client's parser reports.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}
# What issue 7 asks the dashboard to show, by words its panel titles must carry.
TOPICS = (
    "deliveries by outcome",
    "verification failures",
    "processing latency",
    "per app",
    "operator errors",
)


def dashboard() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and template variables."""
    found = [t["expr"] for panel in panels(board) for t in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(str(query.get("query", "")))
    return found


def queried_metrics(prefix: str) -> set[str]:
    return {
        name
        for text in queries(dashboard())
        for name in METRIC.findall(text)
        if name.startswith(prefix)
    }


def exported_series(exposition: str) -> set[str]:
    """Series names a /metrics text makes queryable (families without samples included)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def test_dashboard_is_grafana_json_with_unique_panel_ids() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in panels(board)]
    assert board["uid"]
    assert board["title"]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_dashboard_shows_every_topic_the_issue_names() -> None:
    titles = " | ".join(panel["title"].lower() for panel in panels(dashboard()))
    for topic in TOPICS:
        assert topic in titles


@pytest.mark.integration
def test_every_receiver_metric_queried_is_exported(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    receiver = ReceiverProcess(tmp_path, secrets_dir, f"sqlite:///{tmp_path / 'receiver.db'}")
    receiver.start()
    try:
        exposition = httpx.get(f"{receiver.url}/metrics", timeout=10).text
    finally:
        receiver.stop()
    wanted = queried_metrics("stripe_webhook_receiver_")
    assert wanted, "the dashboard queries no receiver metric"
    assert wanted <= exported_series(exposition), wanted - exported_series(exposition)


@pytest.mark.integration
def test_every_operator_metric_queried_is_exported(
    kube_cluster: Cluster, kubectl: Kubectl, kube_namespace: str, tmp_path: Path
) -> None:
    apply_crd(kubectl)
    operator = OperatorProcess(
        kube_cluster.kubeconfig, "http://127.0.0.1:9", kube_namespace, tmp_path, "dashboard-test"
    ).start()
    try:
        exposition = operator.metrics()
    finally:
        operator.stop()
    wanted = queried_metrics("stripe_webhook_operator_")
    assert wanted, "the dashboard queries no operator metric"
    assert wanted <= exported_series(exposition), wanted - exported_series(exposition)
