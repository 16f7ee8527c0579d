"""What the receiver and the operator export on /metrics, read from real processes: the series
names a dashboard query or an alerting rule may name."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.project.objects import apply_crd
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import ReceiverProcess

METRIC = re.compile(r"\b(stripe_webhook_(?:receiver|operator)_[a-z0-9_]+)")
# Series each family type exposes, after the family name prometheus_client's parser reports.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_series(exposition: str) -> set[str]:
    """Series names a /metrics text makes queryable (families without samples included)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def named_metrics(queries: list[str], prefix: str) -> set[str]:
    """The metric names of the project that these PromQL texts name, starting with `prefix`."""
    return {name for text in queries for name in METRIC.findall(text) if name.startswith(prefix)}


def receiver_exposition(workdir: Path) -> str:
    """The /metrics text of a freshly started receiver with no webhooks."""
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir()
    receiver = ReceiverProcess(workdir, secrets_dir, f"sqlite:///{workdir / 'receiver.db'}")
    receiver.start()
    try:
        return httpx.get(f"{receiver.url}/metrics", timeout=10).text
    finally:
        receiver.stop()


def operator_exposition(
    cluster: Cluster, kubectl: Kubectl, namespace: str, workdir: Path, cluster_id: str
) -> str:
    """The /metrics text of a freshly started operator watching an empty `namespace`."""
    apply_crd(kubectl)
    operator = OperatorProcess(
        cluster.kubeconfig, "http://127.0.0.1:9", namespace, workdir, cluster_id
    ).start()
    try:
        return operator.metrics()
    finally:
        operator.stop()
