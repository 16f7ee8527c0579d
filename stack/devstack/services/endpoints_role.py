"""What Prometheus's Kubernetes discovery with `role: endpoints` finds in a namespace, computed
from the namespace's Endpoints, Services and Pods as the API server lists them.

The Prometheus Operator turns every ServiceMonitor into scrape jobs of that role. Debian builds
Prometheus without Kubernetes discovery (devstack.services.scrape_config), so the stack computes
the same targets itself and hands them over through file_sd files: the relabelling of the
ServiceMonitor jobs then selects and labels them as it would in a cluster. As Prometheus does:

- each Endpoints object is one group, labelled with its namespace and name, its own labels
  and annotations, and those of the Service of the same name, when there is one;
- each address and port of it is a target, `__meta_kubernetes_endpoint_ready` "true" for the
  ready addresses and "false" for the not-ready ones, with the port's name and protocol and the
  address's target (kind, name), node and hostname;
- an address whose target is a Pod that exists also carries the Pod's labels (name, IP, phase,
  readiness, node, host IP, uid, controller, labels and annotations) and, when a container
  declares the endpoint's port number, that container and port;
- each container port of such a Pod that no endpoint port covers is a target too, at the Pod's
  IP, with the Pod's and the container's labels but none of an endpoint (a ServiceMonitor's
  `port` rule drops it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from devstack.services.scrape_config import META, label_name

Manifest = Mapping[str, Any]
TargetGroup = dict[str, Any]


def _metadata_labels(prefix: str, metadata: Manifest) -> dict[str, str]:
    """`<prefix>_label_<name>`, `<prefix>_labelpresent_<name>` and the same for annotations."""
    labels = {}
    for kind, field in (("label", "labels"), ("annotation", "annotations")):
        for key, value in (metadata.get(field) or {}).items():
            labels[f"{META}{prefix}_{kind}_{label_name(key)}"] = str(value)
            labels[f"{META}{prefix}_{kind}present_{label_name(key)}"] = "true"
    return labels


def service_labels(service: Manifest) -> dict[str, str]:
    """The labels an Endpoints group takes from the Service of the same name."""
    metadata = service["metadata"]
    return {
        f"{META}namespace": metadata["namespace"],
        f"{META}service_name": metadata["name"],
        **_metadata_labels("service", metadata),
    }


def _condition(pod: Manifest, kind: str) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status", "Unknown")).lower()
    return "unknown"


def pod_labels(pod: Manifest) -> dict[str, str]:
    """The labels every target backed by `pod` carries."""
    metadata, status = pod["metadata"], pod.get("status") or {}
    labels = {
        f"{META}namespace": metadata["namespace"],
        f"{META}pod_name": metadata["name"],
        f"{META}pod_ip": status.get("podIP", ""),
        f"{META}pod_ready": _condition(pod, "Ready"),
        f"{META}pod_phase": status.get("phase", ""),
        f"{META}pod_node_name": (pod.get("spec") or {}).get("nodeName", ""),
        f"{META}pod_host_ip": status.get("hostIP", ""),
        f"{META}pod_uid": metadata.get("uid", ""),
        **_metadata_labels("pod", metadata),
    }
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("controller"):
            labels[f"{META}pod_controller_kind"] = owner["kind"]
            labels[f"{META}pod_controller_name"] = owner["name"]
    return labels


def _container_labels(container: Manifest, port: Manifest, protocol: str) -> dict[str, str]:
    return {
        f"{META}pod_container_name": container["name"],
        f"{META}pod_container_image": container.get("image", ""),
        f"{META}pod_container_init": "false",
        f"{META}pod_container_port_name": port.get("name", ""),
        f"{META}pod_container_port_number": str(port["containerPort"]),
        f"{META}pod_container_port_protocol": protocol,
    }


def _declaring(pod: Manifest, number: int) -> tuple[Manifest, Manifest] | None:
    """The first container of `pod` declaring port `number`, and that port."""
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort") == number:
                return container, port
    return None


def _address_target(
    address: Manifest, port: Manifest, ready: bool, pods: Mapping[str, Manifest]
) -> tuple[dict[str, str], Manifest | None]:
    """One address and port as a target, and the Pod behind it if it exists."""
    protocol = port.get("protocol", "TCP")
    labels = {
        "__address__": f"{address['ip']}:{port['port']}",
        f"{META}endpoint_port_name": port.get("name", ""),
        f"{META}endpoint_port_protocol": protocol,
        f"{META}endpoint_ready": "true" if ready else "false",
    }
    reference = address.get("targetRef") or {}
    if reference:
        labels[f"{META}endpoint_address_target_kind"] = reference.get("kind", "")
        labels[f"{META}endpoint_address_target_name"] = reference.get("name", "")
    if address.get("nodeName"):
        labels[f"{META}endpoint_node_name"] = address["nodeName"]
    if address.get("hostname"):
        labels[f"{META}endpoint_hostname"] = address["hostname"]
    pod = pods.get(reference.get("name", "")) if reference.get("kind") == "Pod" else None
    if pod is None:
        return labels, None
    labels.update(pod_labels(pod))
    declared = _declaring(pod, port["port"])
    if declared is not None:
        labels.update(_container_labels(*declared, protocol))
    return labels, pod


def endpoints_group(
    endpoints: Manifest, services: Mapping[str, Manifest], pods: Mapping[str, Manifest]
) -> list[dict[str, str]]:
    """The targets of one Endpoints object (each a full label set, `__address__` included)."""
    metadata = endpoints["metadata"]
    common = {
        f"{META}namespace": metadata["namespace"],
        f"{META}endpoints_name": metadata["name"],
        **_metadata_labels("endpoints", metadata),
    }
    if metadata["name"] in services:
        common.update(service_labels(services[metadata["name"]]))
    found = []
    covered: dict[str, tuple[Manifest, set[int]]] = {}
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
                for address in subset.get(key) or []:
                    labels, pod = _address_target(address, port, ready, pods)
                    found.append({**common, **labels})
                    if pod is not None:
                        name = pod["metadata"]["name"]
                        covered.setdefault(name, (pod, set()))[1].add(port["port"])
    for pod, numbers in covered.values():
        for container in pod["spec"].get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("containerPort") in numbers:
                    continue
                found.append(
                    {
                        **common,
                        "__address__": f"{pod['status'].get('podIP', '')}:{port['containerPort']}",
                        **pod_labels(pod),
                        **_container_labels(container, port, port.get("protocol", "TCP")),
                    }
                )
    return found


def _by_name(items: Iterable[Manifest]) -> dict[str, Manifest]:
    return {item["metadata"]["name"]: item for item in items}


def target_groups(
    endpoints: Sequence[Manifest], services: Sequence[Manifest], pods: Sequence[Manifest]
) -> list[TargetGroup]:
    """Every target of a namespace's Endpoints as file_sd groups (one target each, its meta
    labels as the group's labels), in a stable order."""
    by_service, by_pod = _by_name(services), _by_name(pods)
    groups = []
    for item in sorted(endpoints, key=lambda e: str(e["metadata"]["name"])):
        for labels in endpoints_group(item, by_service, by_pod):
            address = labels.pop("__address__")
            groups.append({"targets": [address], "labels": labels})
    return groups
