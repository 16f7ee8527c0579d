"""What independent checkers of rendered charts (kube-linter, kube-score, checkov, polaris) ask
for, rendered by default: disruption budgets for several pods that let unhealthy pods go,
spread pods, probes that differ in meaning, ephemeral-storage requests and limits, an egress
policy for the operator, and the receiver's connection limits on its command line."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import (
    VALUES_FILES,
    Manifest,
    container,
    find,
    kinds,
    pod_specs,
    render,
)

POSTGRES = "receiver.database.url=postgresql://u:p@db:5432/receiver"


def _budgets(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        m["metadata"]["name"].rsplit("-", 1)[1]: m
        for m in manifests
        if m["kind"] == "PodDisruptionBudget"
    }


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([], set()),
        ([POSTGRES, "receiver.replicas=3"], {"receiver"}),
        ([POSTGRES, "receiver.autoscaling.enabled=true"], {"receiver"}),
        (["operator.replicas=2"], {"operator"}),
        ([POSTGRES, "receiver.replicas=3", "receiver.podDisruptionBudget.enabled=false"], set()),
        (["receiver.podDisruptionBudget.enabled=true"], {"receiver"}),
    ],
    ids=["one-pod-each", "three-receivers", "autoscaled", "two-operators", "turned-off", "forced"],
)
def test_several_pods_get_a_disruption_budget_by_default(
    sets: list[str], expected: set[str]
) -> None:
    manifests = render(sets=sets)
    budgets = _budgets(manifests)
    assert set(budgets) == expected
    for component, budget in budgets.items():
        deployment = find(manifests, "Deployment", f"-{component}")
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
        assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_disruption_budget_lets_unhealthy_pods_be_evicted(values: str) -> None:
    for budget in _budgets(render(values)).values():
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert len(_budgets(render("ha"))) == 2


def _spread(spec: dict[str, Any], selector: dict[str, str]) -> None:
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"] == {"matchLabels": selector}
    (constraint,) = spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    # Soft: one node (or one zone) still runs every pod.
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
    assert constraint["labelSelector"] == {"matchLabels": selector}
    assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_several_pods_are_spread_over_nodes_and_zones_by_default() -> None:
    manifests = render("ha")
    for suffix in ("-operator", "-receiver"):
        deployment = find(manifests, "Deployment", suffix)
        _spread(
            deployment["spec"]["template"]["spec"], deployment["spec"]["selector"]["matchLabels"]
        )
    for _, spec in pod_specs(render()):
        assert "affinity" not in spec
        assert "topologySpreadConstraints" not in spec


def test_the_users_own_scheduling_rules_replace_the_defaults() -> None:
    manifests = render(
        "ha",
        [
            "receiver.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].key=pool",
            "receiver.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
            "receiver.topologySpreadConstraints[0].maxSkew=2",
            "receiver.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
            "receiver.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        ],
    )
    spec = find(manifests, "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert set(spec["affinity"]) == {"nodeAffinity"}
    assert [c["maxSkew"] for c in spec["topologySpreadConstraints"]] == [2]


def test_operator_liveness_and_readiness_ask_different_questions() -> None:
    operator = container(find(render(), "Deployment", "-operator"), "operator")
    assert operator["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_container_requests_and_limits_ephemeral_storage(values: str) -> None:
    for name, spec in pod_specs(render(values)):
        for c in spec["containers"]:
            resources = c["resources"]
            assert "ephemeral-storage" in resources["requests"], (name, c["name"])
            assert "ephemeral-storage" in resources["limits"], (name, c["name"])


def _egress(policy: Manifest) -> list[tuple[set[tuple[Any, str]], list[Any]]]:
    return [
        ({(p["port"], p["protocol"]) for p in rule["ports"]}, rule.get("to", []))
        for rule in policy["spec"]["egress"]
    ]


def test_the_operator_may_reach_only_dns_the_api_server_stripe_and_the_receiver() -> None:
    manifests = render("networkpolicy")
    policy = find(manifests, "NetworkPolicy", "-operator")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    receiver = find(manifests, "Deployment", "-receiver")["spec"]["selector"]["matchLabels"]
    assert _egress(policy) == [
        ({(53, "UDP"), (53, "TCP")}, []),
        ({(443, "TCP"), (6443, "TCP")}, []),
        ({(443, "TCP")}, []),
        ({(8000, "TCP")}, [{"podSelector": {"matchLabels": receiver}}]),
    ]
    assert "NetworkPolicy" not in kinds(render())


def test_the_operator_egress_follows_the_stripe_api_base_and_the_api_server_peers() -> None:
    manifests = render(
        "networkpolicy",
        [
            "stripe.apiBase=http://stripe-emulator.testing.svc:12111",
            "networkPolicy.apiServerPort=8443",
            "networkPolicy.apiServerTo[0].ipBlock.cidr=10.0.0.1/32",
        ],
    )
    rules = _egress(find(manifests, "NetworkPolicy", "-operator"))
    assert rules[1] == ({(443, "TCP"), (8443, "TCP")}, [{"ipBlock": {"cidr": "10.0.0.1/32"}}])
    assert rules[2] == ({(12111, "TCP")}, [])
    plain_http = render("networkpolicy", ["stripe.apiBase=http://stripe-emulator.testing.svc"])
    assert _egress(find(plain_http, "NetworkPolicy", "-operator"))[2][0] == {(80, "TCP")}


def test_the_receiver_gets_its_connection_limits_on_the_command_line() -> None:
    args = container(find(render(), "Deployment", "-receiver"), "receiver")["args"]
    for arg in (
        "--max-connections=2048",
        "--max-header-bytes=16384",
        "--client-timeout=10s",
        "--keep-alive-timeout=5s",
        "--max-pending-body-bytes=67108864",
    ):
        assert arg in args
    changed = render(sets=["receiver.http.maxConnections=100", "receiver.http.clientTimeout=3s"])
    args = container(find(changed, "Deployment", "-receiver"), "receiver")["args"]
    assert "--max-connections=100" in args
    assert "--client-timeout=3s" in args
