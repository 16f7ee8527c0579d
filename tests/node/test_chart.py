"""The chart on a real node, as a user's first `helm install --wait` runs it: every Pod of the
project's image Ready, `helm test` green, the receiver locked down, the operator on in-cluster
config, and a subscription update from Stripe applied through the receiver Service."""

from __future__ import annotations

import ipaddress
import json

import pytest

from devstack.node.network import POD_CIDR
from devstack.processes import poll
from devstack.release import ChartRelease
from tests.node.journey import Journey, webhook

pytestmark = pytest.mark.integration


def _pods(release: ChartRelease) -> list[dict[str, object]]:
    """The release's running Pods (not one on its way out, nor `helm test`'s)."""
    raw = release.kubectl("get", "pods", "-n", release.namespace, "-o", "json").stdout
    return [
        pod
        for pod in json.loads(raw)["items"]
        if "deletionTimestamp" not in pod["metadata"]
        and pod["metadata"]["labels"].get("app.kubernetes.io/component") != "test"
    ]


def test_helm_install_wait_leaves_every_pod_ready(release: ChartRelease) -> None:
    pods = _pods(release)
    components = sorted(
        pod["metadata"]["labels"]["app.kubernetes.io/component"]  # type: ignore[index]
        for pod in pods
    )
    assert components == ["operator", "receiver"]
    for pod in pods:
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}  # type: ignore[index]
        assert ready["Ready"] == "True", pod["metadata"]
        images = {c["image"] for c in pod["spec"]["containers"]}  # type: ignore[index]
        assert images == {"localhost/stripe-webhook-operator:dev"}
    claim = release.kubectl(
        "get",
        "pvc",
        f"{release.receiver_service}-data",
        "-n",
        release.namespace,
        "-o",
        "jsonpath={.status.phase}",
    ).stdout
    assert claim == "Bound"


def test_helm_test_passes(release: ChartRelease) -> None:
    result = release.test()
    assert "Phase:          Succeeded" in result.stdout, result.stdout
    # The test Pod asked both Services by their cluster DNS names.
    assert f"{release.receiver_service}" in result.stdout


def test_receiver_runs_as_non_root_and_cannot_write_its_root_filesystem(
    release: ChartRelease,
) -> None:
    (pod,) = release.receiver_pods()
    script = (
        "import os\n"
        "print('uid', os.getuid(), 'gid', os.getgid())\n"
        "try:\n"
        "    open('/written-by-the-receiver', 'w')\n"
        "except OSError as exc:\n"
        "    print('root filesystem:', exc.strerror)\n"
        "open('/tmp/scratch', 'w').write('ok')\n"
        "print('tmp: writable')\n"
    )
    answer = release.kubectl("exec", "-n", release.namespace, pod, "--", "python", "-c", script)
    assert answer.stdout.splitlines() == [
        "uid 10001 gid 10001",
        "root filesystem: Read-only file system",
        "tmp: writable",
    ]


def test_operator_uses_in_cluster_config_as_the_charts_service_account(
    release: ChartRelease, journey: Journey
) -> None:
    journey.apply(webhook("audited"))
    journey.wait_ready("audited")
    account = f"system:serviceaccount:{release.namespace}:{release.operator_deployment}"
    (pod,) = (
        p
        for p in _pods(release)
        if p["metadata"]["labels"]["app.kubernetes.io/component"]  # type: ignore[index]
        == "operator"
    )
    pod_ip = pod["status"]["podIP"]  # type: ignore[index]
    assert journey.node.control_plane is not None
    seen = [
        json.loads(line)
        for line in journey.node.control_plane.audit_log.read_text().splitlines()
        if account in line
    ]
    # Its requests came from the operator's Pod (and those it replaced, if another test
    # restarted it), authenticated by the token mounted there: never from the host.
    sources = {address for event in seen for address in event["sourceIPs"]}
    assert pod_ip in sources
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(POD_CIDR) for a in sources), sources


def test_subscription_update_from_stripe_reaches_the_pod_through_the_service(
    journey: Journey,
) -> None:
    journey.apply(webhook("shop"))
    status = journey.wait_ready("shop")
    assert status["url"].startswith(f"http://{journey.release.receiver_service}.")
    subscribers = journey.enrol("shop", 1)
    (subscription_id,) = subscribers.subscription_ids
    journey.client().v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True})

    def applied() -> bool:
        state = journey.subscriber("shop", "user-0")
        return any(s["cancel_at_period_end"] for s in state["subscriptions"].values())

    poll("the update to reach the subscriber's state", applied)
    attempts = journey.stripe.deliveries(journey.api_key, endpoint=status["endpointId"])
    assert attempts
    assert {a["status"] for a in attempts} == {200}
    assert {a["event_type"] for a in attempts} == {"customer.subscription.updated"}


def test_operator_nudges_the_receiver_pod_after_writing_its_secret(journey: Journey) -> None:
    # Without the nudge a new webhook waits for the kubelet's periodic sync of the Secret
    # volume (about a minute); `make bench-propagation` measures both ways.
    journey.apply(webhook("quick"))
    journey.wait_ready("quick")
    release = journey.release
    (pod,) = release.receiver_pods()

    def nudged_with_the_latest_version() -> bool:
        annotations = json.loads(
            release.kubectl(
                "get",
                "pod",
                pod,
                "-n",
                release.namespace,
                "-o",
                "jsonpath={.metadata.annotations}",
            ).stdout
            or "{}"
        )
        version = release.kubectl(
            "get",
            "secret",
            "stripe-webhook-receiver-secrets",
            "-n",
            release.namespace,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ).stdout
        return annotations.get("stripe.operator.dev/secrets-version") == version

    poll("the receiver Pod annotated with the Secret's version", nudged_with_the_latest_version)
    # By the operator's Pod, as the chart's ServiceAccount, allowed by the chart's Role.
    assert journey.node.control_plane is not None
    account = f"system:serviceaccount:{release.namespace}:{release.operator_deployment}"
    patches = [
        event
        for line in journey.node.control_plane.audit_log.read_text().splitlines()
        if account in line
        and (event := json.loads(line))["verb"] == "patch"
        and event["objectRef"].get("resource") == "pods"
    ]
    codes = {event["responseStatus"]["code"] for event in patches}
    # 404: a Pod that went away between the list and its patch (a replaced receiver).
    assert 200 in codes
    assert codes <= {200, 404}, codes
    assert {event["objectRef"]["namespace"] for event in patches} == {release.namespace}
