"""The local Prometheus (Debian's, on loopback, a throwaway data directory, stopped by PID) and
the scrape configuration made from the chart's ServiceMonitors: it passes `promtool check
config`, has the ServiceMonitors' jobs, ports, paths and intervals, and the real Prometheus gives
the targets the job/namespace/pod labels the Prometheus Operator's relabelling gives them."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.processes import pid_running
from devstack.project.receiver_process import ReceiverProcess
from devstack.services.prometheus import PrometheusServer
from devstack.services.scrape_config import (
    RULES_FILE,
    Endpoint,
    FileDiscovery,
    StaticDiscovery,
    local_endpoints,
    prometheus_config,
    render_chart,
    scrape_configs,
    service_monitors,
)
from tests.receiver.layout import project

NAMESPACE = "stripe-system"
PREFIX = "stripe-webhook-operator"  # the release contains the chart's name: names start here
ADDRESSES = {"operator": "127.0.0.1:18080", "receiver": "127.0.0.1:18000"}
COMPONENT_PORTS = {"operator": "metrics", "receiver": "http"}


def promtool_check(config: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed; run `make system-packages` (Debian's prometheus)."
    return subprocess.run(
        [binary, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("variant", ["static", "file"])
def test_configuration_from_the_chart_passes_promtool(variant: str, tmp_path: Path) -> None:
    manifests = render_chart(NAMESPACE)
    endpoints = local_endpoints(manifests, ADDRESSES)
    if variant == "static":
        discovery: StaticDiscovery | FileDiscovery = StaticDiscovery(endpoints)
    else:
        discovery = FileDiscovery(tmp_path / "targets")
        discovery.publish(endpoints, [NAMESPACE])
    config = tmp_path / "prometheus.yml"
    config.write_text(
        prometheus_config(service_monitors(manifests), discovery, rule_files=[RULES_FILE])
    )
    result = promtool_check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_one_job_per_service_monitor_endpoint_with_its_port_path_and_interval() -> None:
    manifests = render_chart(
        NAMESPACE, ["serviceMonitor.interval=15s", "serviceMonitor.scrapeTimeout=5s"]
    )
    jobs = {
        job["job_name"]: job
        for job in scrape_configs(service_monitors(manifests), StaticDiscovery())
    }
    assert set(jobs) == {
        f"serviceMonitor/{NAMESPACE}/{PREFIX}-{component}/0" for component in COMPONENT_PORTS
    }
    for component, port in COMPONENT_PORTS.items():
        job = jobs[f"serviceMonitor/{NAMESPACE}/{PREFIX}-{component}/0"]
        assert (job["scrape_interval"], job["scrape_timeout"]) == ("15s", "5s")
        assert job["metrics_path"] == "/metrics"
        keeps = [rule for rule in job["relabel_configs"] if rule.get("action") == "keep"]
        assert {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_endpoint_port_name"],
            "regex": port,
        } in keeps
        selected = {
            rule["source_labels"][0].removeprefix("__meta_kubernetes_service_label_")
            for rule in keeps[:-1]
        }
        assert selected == {
            "app_kubernetes_io_name",
            "app_kubernetes_io_instance",
            "app_kubernetes_io_component",
        }


def test_local_endpoints_are_the_rendered_services_at_the_given_addresses() -> None:
    endpoints = {e.service: e for e in local_endpoints(render_chart(NAMESPACE), ADDRESSES)}
    assert set(endpoints) == {f"{PREFIX}-operator", f"{PREFIX}-receiver"}
    for component, port in COMPONENT_PORTS.items():
        endpoint = endpoints[f"{PREFIX}-{component}"]
        assert endpoint.address == ADDRESSES[component]
        assert endpoint.namespace == NAMESPACE
        assert endpoint.port_name == port
        assert endpoint.container == component
        assert endpoint.pod == f"{PREFIX}-{component}-local"
        assert endpoint.service_labels["app.kubernetes.io/component"] == component


def receiver_endpoints(receivers: list[ReceiverProcess]) -> list[Endpoint]:
    """The receiver Service's endpoints if each receiver process were one of its pods."""
    manifests = render_chart(NAMESPACE)
    found = []
    for index, receiver in enumerate(receivers):
        addresses = {"receiver": f"127.0.0.1:{receiver.port}"}
        found += local_endpoints(manifests, addresses, pod_suffix=f"replica-{index}")
    return found


@pytest.mark.integration
def test_prometheus_labels_receiver_pods_as_the_service_monitor_does(
    start_prometheus: Callable[[str], PrometheusServer], tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    project(secrets_dir, {})
    receivers = [
        ReceiverProcess(tmp_path, secrets_dir, f"sqlite:///{tmp_path}/r{i}.db").start()
        for i in range(2)
    ]
    try:
        discovery = FileDiscovery(tmp_path / "targets")
        first, second = receiver_endpoints(receivers)
        # An endpoint of a port the ServiceMonitor does not name must be dropped.
        stray = dataclasses.replace(first, port_name="debug", pod="stray")
        discovery.publish([first, stray], [NAMESPACE])
        monitors = service_monitors(
            render_chart(
                NAMESPACE, ["serviceMonitor.interval=1s", "serviceMonitor.scrapeTimeout=1s"]
            )
        )
        server = start_prometheus(prometheus_config(monitors, discovery, scrape_interval="1s"))
        [target] = server.wait_until_scraped(1)
        assert target["labels"] == {
            "job": "receiver",
            "namespace": NAMESPACE,
            "pod": f"{PREFIX}-receiver-replica-0",
            "service": f"{PREFIX}-receiver",
            "container": "receiver",
            "endpoint": "http",
            "instance": first.address,
        }
        assert target["scrapeUrl"] == f"http://{first.address}/metrics"
        server.wait_for(
            "the receiver's gauge with the pod label",
            lambda: bool(
                server.query(f'stripe_webhook_receiver_webhooks_loaded{{pod="{first.pod}"}}')
            ),
        )
        # A second pod appears: Prometheus re-reads the file and scrapes it too.
        discovery.publish([first, second], [NAMESPACE])
        targets = server.wait_until_scraped(2)
        assert {t["labels"]["pod"] for t in targets} == {first.pod, second.pod}
        pid, data_dir = server.pid, server.data_dir
        assert data_dir is not None
        assert data_dir.is_dir()
        server.stop()
        assert not pid_running(pid)
        assert not data_dir.exists()
    finally:
        for receiver in receivers:
            receiver.stop()
