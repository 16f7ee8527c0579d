"""What the stack hands Prometheus in place of its Kubernetes discovery (role `endpoints`):
targets computed from Endpoints, Services and Pods as the API server lists them, with the meta
labels the Prometheus Operator's relabelling reads; the file_sd files they go into; and a real
Prometheus labelling them as the ServiceMonitor describes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.project.receiver_process import ReceiverProcess
from devstack.services.endpoints_role import target_groups
from devstack.services.prometheus import PrometheusServer
from devstack.services.scrape_config import (
    FileDiscovery,
    prometheus_config,
    render_chart,
    service_monitors,
)
from tests.receiver.layout import project

NAMESPACE = "stripe-system"
SERVICE = "swo-receiver"
M = "__meta_kubernetes_"


def service() -> dict[str, Any]:
    return {
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/component": "receiver"},
            "annotations": {"example.com/note": "kept"},
        }
    }


def pod(name: str, ip: str, *, ready: bool = True, ports: tuple[int, ...] = (8000,)) -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "labels": {"app.kubernetes.io/component": "receiver"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "swo-receiver-5d8", "controller": True}
            ],
        },
        "spec": {
            "nodeName": "devstack-node",
            "containers": [
                {
                    "name": "receiver",
                    "image": "localhost/stripe-webhook-operator:dev",
                    "ports": [
                        {"name": f"p{number}", "containerPort": number, "protocol": "TCP"}
                        for number in ports
                    ],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "hostIP": "10.250.0.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def address(ip: str, pod_name: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"ip": ip, "nodeName": "devstack-node"}
    if pod_name is not None:
        found["targetRef"] = {"kind": "Pod", "name": pod_name, "namespace": NAMESPACE}
    return found


def endpoints(ready: list[dict[str, Any]], not_ready: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"team": "payments"}},
        "subsets": [
            {
                "addresses": ready,
                "notReadyAddresses": not_ready,
                "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
            }
        ],
    }


def by_address(groups: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {group["targets"][0]: group["labels"] for group in groups}


def test_each_address_is_a_target_with_its_endpoint_service_and_pod_labels() -> None:
    groups = target_groups(
        [endpoints([address("10.88.0.5", "a")], [address("10.88.0.6", "b")])],
        [service()],
        [pod("a", "10.88.0.5"), pod("b", "10.88.0.6", ready=False)],
    )
    targets = by_address(groups)
    assert set(targets) == {"10.88.0.5:8000", "10.88.0.6:8000"}
    ready, starting = targets["10.88.0.5:8000"], targets["10.88.0.6:8000"]
    assert ready[f"{M}endpoint_ready"] == "true"
    assert starting[f"{M}endpoint_ready"] == "false"
    assert starting[f"{M}pod_ready"] == "false"
    expected = {
        f"{M}namespace": NAMESPACE,
        f"{M}endpoints_name": SERVICE,
        f"{M}endpoints_label_team": "payments",
        f"{M}service_name": SERVICE,
        f"{M}service_label_app_kubernetes_io_component": "receiver",
        f"{M}service_labelpresent_app_kubernetes_io_component": "true",
        f"{M}service_annotation_example_com_note": "kept",
        f"{M}endpoint_port_name": "http",
        f"{M}endpoint_port_protocol": "TCP",
        f"{M}endpoint_address_target_kind": "Pod",
        f"{M}endpoint_address_target_name": "a",
        f"{M}endpoint_node_name": "devstack-node",
        f"{M}pod_name": "a",
        f"{M}pod_ip": "10.88.0.5",
        f"{M}pod_phase": "Running",
        f"{M}pod_ready": "true",
        f"{M}pod_node_name": "devstack-node",
        f"{M}pod_host_ip": "10.250.0.1",
        f"{M}pod_uid": "uid-a",
        f"{M}pod_controller_kind": "ReplicaSet",
        f"{M}pod_controller_name": "swo-receiver-5d8",
        f"{M}pod_label_app_kubernetes_io_component": "receiver",
        f"{M}pod_container_name": "receiver",
        f"{M}pod_container_port_name": "p8000",
        f"{M}pod_container_port_number": "8000",
        f"{M}pod_container_port_protocol": "TCP",
    }
    assert {key: ready.get(key) for key in expected} == expected


def test_a_container_port_no_endpoint_port_covers_is_a_target_without_endpoint_labels() -> None:
    groups = target_groups(
        [endpoints([address("10.88.0.5", "a")], [])],
        [service()],
        [pod("a", "10.88.0.5", ports=(8000, 9000))],
    )
    extra = by_address(groups)["10.88.0.5:9000"]
    assert extra[f"{M}pod_container_port_number"] == "9000"
    assert extra[f"{M}pod_name"] == "a"
    # A ServiceMonitor's job keeps only targets whose endpoint port it names: not this one.
    assert not any(key.startswith(f"{M}endpoint_") for key in extra)


def test_an_address_without_a_known_pod_has_no_pod_labels() -> None:
    groups = target_groups(
        [endpoints([address("10.88.0.7", None), address("10.88.0.8", "gone")], [])],
        [],
        [],
    )
    for labels in by_address(groups).values():
        assert not any(key.startswith(f"{M}pod_") for key in labels)
        assert not any(key.startswith(f"{M}service_") for key in labels)
        assert labels[f"{M}endpoints_name"] == SERVICE


def test_a_file_is_rewritten_only_when_its_targets_change(tmp_path: Path) -> None:
    discovery = FileDiscovery(tmp_path / "targets")
    first = target_groups(
        [endpoints([address("10.88.0.5", "a")], [])], [service()], [pod("a", "10.88.0.5")]
    )
    assert discovery.publish_groups(NAMESPACE, first)
    assert not discovery.publish_groups(NAMESPACE, first)
    assert discovery.published(NAMESPACE) == first
    assert discovery.publish_groups(NAMESPACE, [])
    assert discovery.published(NAMESPACE) == []
    assert discovery.published("elsewhere") == []


def chart_pod(manifests: list[Any], name: str, ip: str, port: int) -> dict[str, Any]:
    """A Pod of the rendered receiver Deployment, running at `ip` with its `http` container
    port at `port`, and one more container port that no Service names."""
    deployment = next(
        m
        for m in manifests
        if m.get("kind") == "Deployment"
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == "receiver"
    )
    template = copy.deepcopy(deployment["spec"]["template"])
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "receiver"]
    container["ports"] = [
        {"name": "http", "containerPort": port, "protocol": "TCP"},
        {"name": "debug", "containerPort": 9, "protocol": "TCP"},
    ]
    return {
        "metadata": {**template["metadata"], "name": name, "namespace": NAMESPACE},
        "spec": {**template["spec"], "nodeName": "devstack-node"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


@pytest.mark.integration
def test_prometheus_relabels_the_endpoints_role_targets_as_the_service_monitor_does(
    start_prometheus: Callable[[str], PrometheusServer], tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    project(secrets_dir, {})
    receiver = ReceiverProcess(tmp_path, secrets_dir, f"sqlite:///{tmp_path}/r.db").start()
    try:
        manifests = render_chart(
            NAMESPACE, ["serviceMonitor.interval=1s", "serviceMonitor.scrapeTimeout=1s"]
        )
        (chart_service,) = [
            m
            for m in manifests
            if m.get("kind") == "Service"
            and m["metadata"]["labels"]["app.kubernetes.io/component"] == "receiver"
        ]
        name = chart_service["metadata"]["name"]
        listed = {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "subsets": [
                {
                    "addresses": [address("127.0.0.1", "receiver-a")],
                    "ports": [{"name": "http", "port": receiver.port, "protocol": "TCP"}],
                }
            ],
        }
        discovery = FileDiscovery(tmp_path / "targets")
        discovery.publish_groups(
            NAMESPACE,
            target_groups(
                [listed],
                [chart_service],
                [chart_pod(manifests, "receiver-a", "127.0.0.1", receiver.port)],
            ),
        )
        config = prometheus_config(service_monitors(manifests), discovery, scrape_interval="1s")
        server = start_prometheus(config)
        [target] = server.wait_until_scraped(1)
        assert target["labels"] == {
            "job": "receiver",
            "namespace": NAMESPACE,
            "pod": "receiver-a",
            "service": name,
            "container": "receiver",
            "endpoint": "http",
            "instance": f"127.0.0.1:{receiver.port}",
        }
        # The container port no Service names was discovered, and dropped by the job.
        dropped = server.api("targets", state="dropped")["droppedTargets"]
        assert "127.0.0.1:9" in {t["discoveredLabels"]["__address__"] for t in dropped}
    finally:
        receiver.stop()
