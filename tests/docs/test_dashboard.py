"""The Grafana dashboard shipped in the chart: it parses, covers what operators watch, and
queries only series the receiver and the operator really export on /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.services.dashboard import dashboard, panels
from tests.observability.exports import (
    exported_series,
    named_metrics,
    operator_exposition,
    receiver_exposition,
)

# What issue 7 asks the dashboard to show, by words its panel titles must carry.
TOPICS = (
    "deliveries by outcome",
    "verification failures",
    "processing latency",
    "per app",
    "operator errors",
)


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and template variables."""
    found = [t["expr"] for panel in panels(board) for t in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(str(query.get("query", "")))
    return found


def queried_metrics(prefix: str) -> set[str]:
    return named_metrics(queries(dashboard()), prefix)


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
    exposition = receiver_exposition(tmp_path)
    wanted = queried_metrics("stripe_webhook_receiver_")
    assert wanted, "the dashboard queries no receiver metric"
    assert wanted <= exported_series(exposition), wanted - exported_series(exposition)


@pytest.mark.integration
def test_every_operator_metric_queried_is_exported(
    kube_cluster: Cluster, kubectl: Kubectl, kube_namespace: str, tmp_path: Path
) -> None:
    exposition = operator_exposition(
        kube_cluster, kubectl, kube_namespace, tmp_path, "dashboard-test"
    )
    wanted = queried_metrics("stripe_webhook_operator_")
    assert wanted, "the dashboard queries no operator metric"
    assert wanted <= exported_series(exposition), wanted - exported_series(exposition)
