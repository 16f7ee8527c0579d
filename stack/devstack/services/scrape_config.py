"""A prometheus.yml made from the chart's rendered ServiceMonitors, as the Prometheus Operator
makes it, so the local Prometheus scrapes the same ports and paths and gives the targets the same
`job`, `namespace`, `pod`, `service`, `container` and `endpoint` labels as in a cluster.

Each ServiceMonitor endpoint becomes one scrape job `serviceMonitor/<namespace>/<name>/<index>`
whose relabelling keeps the endpoints of Services matching the selector and the port, then sets
the labels, exactly as the Prometheus Operator's own generated configuration does (the hash-mod
sharding rules it adds are left out: with one shard they keep every target). Only where the
targets come from differs, and that is the `Discovery` passed in; each hands Prometheus the
`Endpoint`s with the `__meta_kubernetes_*` labels Kubernetes' endpoints discovery would attach,
so the very same relabelling selects and labels them:

- `StaticDiscovery`: endpoints known when the configuration is written (the operator and the
  receiver running as local processes);
- `FileDiscovery`: endpoints published into files Prometheus watches (`file_sd_configs`), which
  can change while it runs: pods that come and go on a node.

Debian builds Prometheus without its Kubernetes discovery (`kubernetes_sd_configs` is refused by
its `prometheus` and `promtool`), so a node's pods reach it through `FileDiscovery`, fed by
devstack.services.target_watcher with what Kubernetes discovery would find in the cluster's
Endpoints, Services and Pods (devstack.services.endpoints_role), rather than through Kubernetes
discovery itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from devstack.processes import REPO_ROOT, StackError, tool

Manifest = Mapping[str, Any]

CHART_DIR = REPO_ROOT / "charts" / "stripe-webhook-operator"
RULES_FILE = CHART_DIR / "alerts" / "stripe-webhook-rules.yaml"
RELEASE = "stripe-webhook-operator"

SERVICE_MONITOR = "ServiceMonitor"
META = "__meta_kubernetes_"
# What RE2 treats as special in a regex; the Prometheus Operator escapes label values this way.
REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def label_name(name: str) -> str:
    """Return a Kubernetes label name as Prometheus's discovery spells it in a meta label:
    every character other than a letter, a digit or `_` becomes `_`."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def regex_literal(value: str) -> str:
    return REGEX_SPECIAL.sub(r"\\\1", value)


@dataclass(frozen=True)
class Endpoint:
    """One address of a Service port, as Kubernetes' endpoints discovery reports it: the Service
    (namespace, name, labels, port name) and the pod and container behind the address."""

    address: str
    namespace: str
    service: str
    service_labels: Mapping[str, str]
    port_name: str
    pod: str
    container: str

    def meta_labels(self) -> dict[str, str]:
        """The `__meta_kubernetes_*` labels Prometheus's discovery gives this target."""
        labels = {
            f"{META}namespace": self.namespace,
            f"{META}service_name": self.service,
            f"{META}endpoint_port_name": self.port_name,
            f"{META}endpoint_address_target_kind": "Pod",
            f"{META}endpoint_address_target_name": self.pod,
            f"{META}endpoint_ready": "true",
            f"{META}pod_name": self.pod,
            f"{META}pod_container_name": self.container,
            f"{META}pod_phase": "Running",
            f"{META}pod_ready": "true",
        }
        for key, value in self.service_labels.items():
            labels[f"{META}service_label_{label_name(key)}"] = value
            labels[f"{META}service_labelpresent_{label_name(key)}"] = "true"
        return labels


class Discovery(Protocol):
    """Where a job's targets come from: the service-discovery part of its scrape config, for a
    job that Kubernetes discovery would limit to `namespaces` (all when empty)."""

    def section(self, namespaces: Sequence[str]) -> dict[str, Any]: ...


def target_groups(endpoints: Sequence[Endpoint]) -> list[dict[str, Any]]:
    """The endpoints as Prometheus target groups (one target each, with its meta labels)."""
    return [{"targets": [e.address], "labels": e.meta_labels()} for e in endpoints]


def _in(endpoints: Sequence[Endpoint], namespaces: Sequence[str]) -> list[Endpoint]:
    return [e for e in endpoints if not namespaces or e.namespace in namespaces]


@dataclass(frozen=True)
class StaticDiscovery:
    """Targets known beforehand, labelled as the Kubernetes discovery would label them."""

    endpoints: Sequence[Endpoint] = field(default_factory=tuple)

    def section(self, namespaces: Sequence[str]) -> dict[str, Any]:
        """The `static_configs` of a job: every known endpoint in `namespaces` (all when empty),
        left for the job's relabelling to select, as discovery leaves them."""
        return {"static_configs": target_groups(_in(self.endpoints, namespaces))}


@dataclass(frozen=True)
class FileDiscovery:
    """Targets published as one file per namespace in `directory`; Prometheus re-reads a file
    when it changes, so `publish` may be called again while it runs."""

    directory: Path

    def section(self, namespaces: Sequence[str]) -> dict[str, Any]:
        """The `file_sd_configs` of a job: the files of `namespaces` (every file when empty), as
        Kubernetes discovery would watch only those namespaces."""
        names = [f"{namespace}.json" for namespace in namespaces] or ["*.json"]
        return {"file_sd_configs": [{"files": [str(self.directory / name) for name in names]}]}

    def publish(self, endpoints: Sequence[Endpoint], namespaces: Sequence[str]) -> None:
        """Write the endpoints of each of `namespaces` (an empty file for one with none)."""
        for namespace in namespaces:
            self.publish_groups(namespace, target_groups(_in(endpoints, [namespace])))

    def publish_groups(self, namespace: str, groups: Sequence[Mapping[str, Any]]) -> bool:
        """Write the target groups of `namespace` unless its file holds them already; return
        whether it was written. The file is replaced in one rename, so Prometheus never reads
        half of one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{namespace}.json"
        text = json.dumps(list(groups), indent=1, sort_keys=True)
        if path.exists() and path.read_text() == text:
            return False
        temporary = self.directory / f".{namespace}.json.tmp"
        temporary.write_text(text)
        temporary.replace(path)
        return True

    def published(self, namespace: str) -> list[dict[str, Any]]:
        """The target groups the file of `namespace` holds now (none before the first write)."""
        path = self.directory / f"{namespace}.json"
        return list(json.loads(path.read_text())) if path.exists() else []


def service_monitors(manifests: Sequence[Manifest]) -> list[Manifest]:
    """The ServiceMonitors among rendered objects."""
    return [m for m in manifests if m.get("kind") == SERVICE_MONITOR]


def scrape_configs(monitors: Sequence[Manifest], discovery: Discovery) -> list[dict[str, Any]]:
    """The scrape jobs of these ServiceMonitors, one per endpoint, in the Prometheus Operator's
    order."""
    jobs = []
    for monitor in monitors:
        for index, endpoint in enumerate(monitor["spec"].get("endpoints") or []):
            jobs.append(_job(monitor, index, endpoint, discovery))
    return jobs


def prometheus_config(
    monitors: Sequence[Manifest],
    discovery: Discovery,
    *,
    scrape_interval: str = "30s",
    evaluation_interval: str = "30s",
    rule_files: Sequence[Path] = (),
) -> str:
    """A whole prometheus.yml scraping what `monitors` select, with `rule_files` loaded."""
    if not monitors:
        raise StackError(
            "The chart rendered no ServiceMonitor; render it with `serviceMonitor.enabled=true`."
        )
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "scrape_configs": scrape_configs(monitors, discovery),
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    return yaml.safe_dump(config, sort_keys=False)


def watched_namespaces(monitors: Sequence[Manifest]) -> list[str]:
    """The namespaces the jobs of `monitors` look for targets in, to publish files for."""
    found: list[str] = []
    for monitor in monitors:
        names = _namespaces(monitor)
        if not names:
            raise StackError(
                f"ServiceMonitor '{monitor['metadata']['name']}' selects `any` namespace, which "
                "a file per namespace cannot follow; list them under "
                "`namespaceSelector.matchNames`."
            )
        found += [name for name in names if name not in found]
    return found


def _namespaces(monitor: Manifest) -> list[str]:
    selector = monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        return []
    return list(selector.get("matchNames") or [monitor["metadata"]["namespace"]])


def _job(
    monitor: Manifest, index: int, endpoint: Mapping[str, Any], discovery: Discovery
) -> dict[str, Any]:
    metadata = monitor["metadata"]
    job: dict[str, Any] = {
        "job_name": f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/{index}",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        **discovery.section(_namespaces(monitor)),
    }
    for key, name in (
        ("interval", "scrape_interval"),
        ("scrapeTimeout", "scrape_timeout"),
        ("path", "metrics_path"),
        ("scheme", "scheme"),
    ):
        if endpoint.get(key):
            job[name] = endpoint[key]
    job["relabel_configs"] = _relabelling(monitor, endpoint)
    return job


def _relabelling(monitor: Manifest, endpoint: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = monitor["spec"]
    if (spec.get("selector") or {}).get("matchExpressions") or "targetPort" in endpoint:
        raise StackError(
            f"ServiceMonitor '{monitor['metadata']['name']}' uses `matchExpressions` or "
            "`targetPort`, which this generator does not translate; select by `matchLabels` "
            "and a named `port`."
        )
    port = str(endpoint["port"])
    pod_of = f"{META}endpoint_address_target_kind", f"{META}endpoint_address_target_name"
    rules: list[dict[str, Any]] = [
        {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
    ]
    for key, value in sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items()):
        rules.append(
            {
                "action": "keep",
                "source_labels": [
                    f"{META}service_label_{label_name(key)}",
                    f"{META}service_labelpresent_{label_name(key)}",
                ],
                "regex": f"({regex_literal(str(value))});true",
            }
        )
    rules += [
        {"action": "keep", "source_labels": [f"{META}endpoint_port_name"], "regex": port},
        {
            "source_labels": list(pod_of),
            "separator": ";",
            "regex": "Node;(.*)",
            "replacement": "${1}",
            "target_label": "node",
        },
        {
            "source_labels": list(pod_of),
            "separator": ";",
            "regex": "Pod;(.*)",
            "replacement": "${1}",
            "target_label": "pod",
        },
        {"source_labels": [f"{META}namespace"], "target_label": "namespace"},
        {"source_labels": [f"{META}service_name"], "target_label": "service"},
        {"source_labels": [f"{META}pod_name"], "target_label": "pod"},
        {"source_labels": [f"{META}pod_container_name"], "target_label": "container"},
        {
            "action": "drop",
            "source_labels": [f"{META}pod_phase"],
            "regex": "(Failed|Succeeded)",
        },
        {
            "source_labels": [f"{META}service_name"],
            "target_label": "job",
            "replacement": "${1}",
        },
    ]
    if spec.get("jobLabel"):
        rules.append(
            {
                "source_labels": [f"{META}service_label_{label_name(spec['jobLabel'])}"],
                "target_label": "job",
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    rules.append({"target_label": "endpoint", "replacement": port})
    return rules


def local_endpoints(
    manifests: Sequence[Manifest], addresses: Mapping[str, str], pod_suffix: str = "local"
) -> list[Endpoint]:
    """The endpoints the rendered Services would have if the pods of their Deployments ran at
    `addresses` (by `app.kubernetes.io/component`, e.g. {"operator": "127.0.0.1:8080"}): the
    Service's labels and port names, the Deployment's container, a pod named after the
    Deployment."""
    found = []
    for service in (m for m in manifests if m.get("kind") == "Service"):
        component = service["metadata"]["labels"].get("app.kubernetes.io/component")
        if component not in addresses:
            continue
        selector = service["spec"]["selector"]
        deployment = _selected_deployment(manifests, selector)
        for port in service["spec"]["ports"]:
            found.append(
                Endpoint(
                    address=addresses[component],
                    namespace=service["metadata"]["namespace"],
                    service=service["metadata"]["name"],
                    service_labels=dict(service["metadata"]["labels"]),
                    port_name=port["name"],
                    pod=f"{deployment['metadata']['name']}-{pod_suffix}",
                    container=_container_with_port(deployment, port["targetPort"]),
                )
            )
    return found


def _selected_deployment(manifests: Sequence[Manifest], selector: Mapping[str, str]) -> Manifest:
    for deployment in (m for m in manifests if m.get("kind") == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if all(labels.get(key) == value for key, value in selector.items()):
            return deployment
    raise StackError(f"No rendered Deployment has pods matching the Service selector {selector}.")


def _container_with_port(deployment: Manifest, port: str | int) -> str:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for declared in container.get("ports") or []:
            if port in (declared.get("name"), declared.get("containerPort")):
                return str(container["name"])
    raise StackError(
        f"Deployment '{deployment['metadata']['name']}' has no container port '{port}'."
    )


def render_chart(
    namespace: str, sets: Sequence[str] = (), release: str = RELEASE
) -> list[Manifest]:
    """`helm template` the chart into `namespace` with its ServiceMonitors on (and `sets`, in
    `helm --set` form); return the rendered objects."""
    argv = [str(tool("helm")), "template", release, str(CHART_DIR), "--namespace", namespace]
    for assignment in ("serviceMonitor.enabled=true", *sets):
        argv += ["--set", assignment]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise StackError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def local_config(
    namespace: str, addresses: Mapping[str, str], interval: str = "1s"
) -> tuple[str, list[Endpoint]]:
    """The prometheus.yml for the chart's parts running as local processes at `addresses` (by
    component), scraped and evaluated every `interval`, with the chart's alerting rules; and
    the endpoints it scrapes."""
    manifests = render_chart(
        namespace,
        [f"serviceMonitor.interval={interval}", f"serviceMonitor.scrapeTimeout={interval}"],
    )
    endpoints = local_endpoints(manifests, addresses)
    config = prometheus_config(
        service_monitors(manifests),
        StaticDiscovery(endpoints),
        scrape_interval=interval,
        evaluation_interval=interval,
        rule_files=[RULES_FILE],
    )
    return config, endpoints
