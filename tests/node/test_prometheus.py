"""Prometheus on the node: Debian's Prometheus, inside the node's network namespace, scrapes the
release's operator and receiver Pods as the chart's ServiceMonitors describe (the Prometheus
Operator's jobs and relabelling, fed with what its endpoints discovery would find in the
release's Endpoints, Services and Pods).

Every ServiceMonitor's targets are up, one per Pod behind its Service, with the labels the
Prometheus Operator gives them; after a journey through the receiver Service (a delivery held
for its receipt and replayed, subscription updates, an unsigned request, a rotation under
traffic) every dashboard panel the journey exercises shows data; a receiver Pod deleted is a
target gone and its replacement's target up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.node.cluster import NodeCluster
from devstack.node.prometheus import NodePrometheus
from devstack.processes import pid_running, poll
from devstack.project.rotation.traffic import SubscriptionTraffic
from devstack.release import ChartRelease
from devstack.services.dashboard import evaluate
from devstack.services.prometheus import PrometheusServer
from tests.node.journey import Journey, webhook

pytestmark = pytest.mark.integration

SCRAPE_SECONDS = 1
# Each component's Service port, which its ServiceMonitor endpoint names.
COMPONENTS = {"operator": "metrics", "receiver": "http"}
NAME = "watched"
# Panel queries this journey cannot move, by (panel title, legend), with the reason. Every
# other query must show a non-zero value at some point of the journey.
NOT_IN_THE_JOURNEY = {
    ("Webhooks loaded", "broken {{pod}}"): "no webhook file is broken: the gauge stays 0",
    ("Secret reloads", "errors (1h)"): (
        "no webhook file is broken, and the counter has a series only once one was"
    ),
    ("Operator errors by reason", "{{reason}}"): (
        "the webhook finds its API key from the start and Stripe answers every call; "
        "tests/observability applies one before its key"
    ),
    ("Beyond retention", "{{namespace}}/{{webhook}}"): (
        "nothing in the journey is older than Stripe's 30-day retention, so the increase "
        "stays 0 (tests/recovery/test_retention.py makes a loss)"
    ),
}


@pytest.fixture(scope="module")
def prometheus(
    node_cluster: NodeCluster, release: ChartRelease, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodePrometheus]:
    monitoring = NodePrometheus(
        node_cluster,
        release,
        tmp_path_factory.mktemp("node-prometheus"),
        interval=f"{SCRAPE_SECONDS}s",
    ).start()
    pid = monitoring.server.pid
    try:
        yield monitoring
    finally:
        monitoring.stop()
    assert not pid_running(pid)


def component(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component", ""))


def serving(release: ChartRelease) -> dict[str, dict[str, Any]]:
    """The operator and receiver Pods behind the release's Services (running, not on their
    way out), by name."""
    raw = release.kubectl("get", "pods", "-n", release.namespace, "-o", "json").stdout
    return {
        item["metadata"]["name"]: item
        for item in json.loads(raw)["items"]
        if component(item) in COMPONENTS
        and item["status"].get("phase") == "Running"
        and not item["metadata"].get("deletionTimestamp")
    }


def receivers(release: ChartRelease) -> list[str]:
    return [name for name, pod in serving(release).items() if component(pod) == "receiver"]


def scraped(server: PrometheusServer) -> list[dict[str, Any]]:
    """The targets of the ServiceMonitor jobs."""
    return [t for t in server.active_targets() if t["scrapePool"].startswith("serviceMonitor/")]


def receiver_targets(server: PrometheusServer) -> dict[str, str]:
    """The receiver job's targets: their pod's name and health."""
    return {
        t["labels"]["pod"]: t["health"]
        for t in scraped(server)
        if t["labels"].get("job") == "receiver"
    }


def delivered(webhook_id: str, outcome: str) -> str:
    """The deliveries counter of one webhook and outcome."""
    selector = f'webhook="{webhook_id}", outcome="{outcome}"'
    return f"stripe_webhook_receiver_deliveries_total{{{selector}}}"


def test_every_service_monitor_target_is_up_with_the_prometheus_operators_labels(
    prometheus: NodePrometheus, release: ChartRelease
) -> None:
    server = prometheus.server
    behind = serving(release)
    running = {name: [p for p in behind if component(behind[p]) == name] for name in COMPONENTS}
    server.wait_for(
        "every Pod behind the Services scraped",
        lambda: {t["labels"]["pod"] for t in scraped(server) if t["health"] == "up"} == set(behind),
    )
    monitors = {m["metadata"]["name"]: m for m in prometheus.monitors}
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for target in scraped(server):
        by_pool.setdefault(target["scrapePool"], []).append(target)
    assert set(by_pool) == {f"serviceMonitor/{release.namespace}/{name}/0" for name in monitors}

    for name, monitor in monitors.items():
        part = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        targets = by_pool[f"serviceMonitor/{release.namespace}/{name}/0"]
        assert {t["labels"]["pod"] for t in targets} == set(running[part])
        for target in targets:
            pod = target["labels"]["pod"]
            assert target["health"] == "up", target["lastError"]
            assert {
                key: target["labels"][key]
                for key in ("job", "namespace", "service", "container", "endpoint")
            } == {
                "job": part,
                "namespace": release.namespace,
                "service": name,
                "container": part,
                "endpoint": COMPONENTS[part],
            }
            host = target["discoveredLabels"]["__address__"].rsplit(":", 1)[0]
            assert host == behind[pod]["status"]["podIP"]
            assert target["scrapeUrl"].endswith("/metrics")
    # The scraped series carry the same labels: what the dashboard and the alerts group by.
    for part in COMPONENTS:
        up = server.query(f'up{{job="{part}", namespace="{release.namespace}"}}')
        assert {item["metric"]["pod"] for item in up} == set(running[part])
        assert all(item["value"][1] == "1" for item in up)


def test_dashboard_panels_the_journey_exercises_have_data(
    prometheus: NodePrometheus, journey: Journey
) -> None:
    server = prometheus.server
    webhook_id = f"{journey.namespace}/{NAME}"
    began = time.time()
    journey.apply(webhook(NAME))
    journey.wait_ready(NAME)

    # An update before its receipt is refused, then replayed when the receipt comes.
    held = journey.stripe.create_subscription(journey.api_key)
    journey.client().v1.subscriptions.update(held.id, params={"metadata": {"step": "early"}})
    server.wait_above("a delivery held", delivered(webhook_id, "receipt_not_found"), 0)
    answer = httpx.post(
        f"{journey.receiver_url}/v1/receipts",
        headers={"Authorization": f"Bearer {journey.receipts_key(NAME)}"},
        json={"app_user_id": "early-user", "fetch_token": held.id},
        timeout=10,
    )
    answer.raise_for_status()
    replayed = f'stripe_webhook_receiver_replayed_deliveries_total{{webhook="{webhook_id}"}}'
    server.wait_above("the held delivery replayed", replayed, 0)

    # Two unsigned requests, a scrape apart: the first makes the counter's series (a rate
    # cannot tell a new series from 0), the second moves it.
    failures = f'stripe_webhook_receiver_verification_failures_total{{webhook="{webhook_id}"}}'
    for seen in range(2):
        unsigned = httpx.post(f"{journey.receiver_url}/webhooks/{webhook_id}", content=b"{}")
        assert unsigned.status_code == 400
        server.wait_above("the unsigned request counted", failures, seen)

    traffic = SubscriptionTraffic(journey.client(), journey.enrol(NAME, 2), rate=4.0).start()
    try:
        traffic.wait_for(4)
        journey.plugin("rotate", NAME, "--wait", "--overlap=8s", "--timeout=2m")
        traffic.wait_for(4)
    finally:
        traffic.stop()
    assert not traffic.errors, traffic.errors
    applied = delivered(webhook_id, "applied")
    server.wait_above("every update applied", applied, traffic.sent - 1)
    time.sleep(2 * SCRAPE_SECONDS)  # the last changes scraped by now
    end = time.time()

    still = []
    for evaluated in evaluate(server, began, end, SCRAPE_SECONDS):
        assert not evaluated.legend_labels_missing(), (
            f"{evaluated.query.key}: the legend names {evaluated.legend_labels_missing()}, "
            "which its series do not carry"
        )
        if evaluated.query.key not in NOT_IN_THE_JOURNEY and not any(evaluated.samples):
            still.append(evaluated.describe())
    assert not still, "queries the journey did not move:\n" + "\n".join(still)
    webhooks = server.label_values("webhook", "stripe_webhook_receiver_deliveries_total")
    assert webhook_id in webhooks


def test_a_deleted_receiver_pods_target_goes_and_its_replacements_comes(
    prometheus: NodePrometheus, release: ChartRelease
) -> None:
    server = prometheus.server
    (old,) = receivers(release)
    server.wait_for("the receiver Pod scraped", lambda: receiver_targets(server) == {old: "up"})
    release.kubectl("delete", "pod", old, "-n", release.namespace, "--wait=false")
    (new,) = poll(
        "a new receiver Pod running", lambda: [n for n in receivers(release) if n != old], 120
    )
    server.wait_for(
        "the new Pod's target up, the old one's gone",
        lambda: receiver_targets(server) == {new: "up"},
        timeout=120,
    )
    # The old target's series end (Prometheus marks them stale when it drops the target).
    server.wait_for("the old Pod's series ended", lambda: not server.query(f'up{{pod="{old}"}}'))
    assert [item["value"][1] for item in server.query(f'up{{pod="{new}"}}')] == ["1"]
    published = prometheus.discovery.published(release.namespace)
    assert old not in {group["labels"].get("__meta_kubernetes_pod_name") for group in published}
