"""Pods of the chart going away under load, on the real node: a rotation under traffic, the
receiver Pod deleted mid-stream, the operator Pod deleted in the middle of a create. Each
counts every event Stripe emitted against the receiver's books: 0 lost, 0 applied twice (the
receiver Pod's deletion also into the reliability ledger, docs/reliability.md)."""

from __future__ import annotations

import pytest

from devstack.processes import poll
from devstack.project.rotation.timeline import EndpointTimeline
from devstack.project.rotation.traffic import SubscriptionTraffic
from tests.node.faults import count_and_check, wait_component_ready
from tests.node.journey import Journey, webhook
from tests.reliability.ledger import Ledger, trials

pytestmark = pytest.mark.integration

RATE = 5.0  # subscription updates per second


def _traffic(journey: Journey, name: str, subscriptions: int) -> SubscriptionTraffic:
    subscribers = journey.enrol(name, subscriptions)
    traffic = SubscriptionTraffic(journey.client(), subscribers, rate=RATE).start()
    traffic.wait_for(3)
    return traffic


def _stop(traffic: SubscriptionTraffic) -> None:
    traffic.stop()
    assert not traffic.errors, traffic.errors


def test_rotation_under_traffic_loses_no_event_and_applies_none_twice(journey: Journey) -> None:
    journey.apply(webhook("rotating"))
    before = journey.wait_ready("rotating")
    timeline = EndpointTimeline(journey.stripe.base_url, journey.api_key).start()
    traffic = _traffic(journey, "rotating", 3)
    try:
        done = journey.plugin("rotate", "rotating", "--wait", "--overlap=15s", "--timeout=3m")
        after = journey.status("rotating")
        traffic.wait_for(10)
    finally:
        _stop(traffic)
        timeline.stop()
    assert after["secretVersion"] == before["secretVersion"] + 1, done.stdout
    tally = journey.tally(
        "rotating",
        old_endpoint=str(before["endpointId"]),
        new_enabled_since=timeline.enabled_since(str(after["endpointId"])),
    )
    assert tally.events_sent >= traffic.sent > 15
    assert tally.problems() == {}
    # Both endpoints sent during the overlap; the receiver kept one copy of each event.
    assert tally.duplicates_delivered > 0


def test_receiver_pod_deleted_under_traffic_is_replaced_and_loses_nothing(
    journey: Journey, ledger: Ledger
) -> None:
    row = ledger.row("Node: receiver Pod deleted under traffic")
    journey.apply(webhook("durable"))
    before = journey.wait_ready("durable")
    release = journey.release
    traffic = _traffic(journey, "durable", 2)
    runs = trials(1, 3)
    try:
        for _ in range(runs):
            old_pods = release.receiver_pods()
            release.kubectl("delete", "pod", *old_pods, "-n", release.namespace, "--wait=false")
            wait_component_ready(release, "receiver", replaced=old_pods, timeout=120)
            traffic.wait_for(10)
    finally:
        _stop(traffic)
    # Refused or unanswered attempts while no receiver ran were retried by Stripe.
    count_and_check(
        journey, "durable", row, traffic, endpoint=str(before["endpointId"]), trials=runs
    )


def test_operator_pod_deleted_mid_create_leaves_one_endpoint_and_a_working_secret(
    journey: Journey,
) -> None:
    release = journey.release
    operator_pods = release.pods("operator")
    # Stripe takes 15 s over the create: long enough to delete the Pod while it runs.
    journey.stripe.inject_fault(
        journey.api_key, path_prefix="/v1/webhook_endpoints", method="POST", work_latency=15.0
    )
    journey.apply(webhook("interrupted"))
    poll(
        "the operator's create to reach Stripe",
        lambda: (
            journey.stripe.stats(journey.api_key)["calls"].get("POST /v1/webhook_endpoints", 0) >= 1
        ),
    )
    release.kubectl(
        "delete", "pod", *operator_pods, "-n", release.namespace, "--grace-period=0", "--force"
    )
    status = journey.wait_ready("interrupted", timeout=180)
    endpoints = journey.client().v1.webhook_endpoints.list(params={"limit": 100}).data
    ours = [e.id for e in endpoints if e.metadata.to_dict().get("k8s-name") == "interrupted"]
    assert ours == [status["endpointId"]]
    assert status["secretVersion"] == 1
    # The secret in the Secret is the endpoint's: an event signed with it is applied.
    subscribers = journey.enrol("interrupted", 1)
    (subscription_id,) = subscribers.subscription_ids
    journey.client().v1.subscriptions.update(subscription_id, params={"metadata": {"k": "v"}})
    poll(
        "the event to be applied",
        lambda: any(
            a["status"] == 200
            for a in journey.stripe.deliveries(journey.api_key, endpoint=status["endpointId"])
        ),
    )
    assert set(release.pods("operator")).isdisjoint(operator_pods)
