"""What the node's fault tests share: traffic through the receiver while a fault happens, the
operator's Pods replaced, and the books of a run counted into the reliability ledger
(tests/reliability/ledger.py) as that suite counts its own scenarios."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from devstack.node.cluster import NodeCluster
from devstack.processes import poll
from devstack.project.rotation.tally import Tally
from devstack.project.rotation.traffic import SubscriptionTraffic, enrol_subscribers
from devstack.release import ChartRelease
from stripe_webhook_operator import constants as c
from tests.node.journey import Journey
from tests.reliability.ledger import SOAK, Row

RATE = 5.0  # subscription updates per second
# Long enough for the slowest fault and its soak trials; the traffic is stopped well before.
TRAFFIC_SECONDS = 900.0 if SOAK else 300.0


def start_traffic(
    journey: Journey, name: str, subscriptions: int, receiver_url: str | None = None
) -> SubscriptionTraffic:
    """Enrol `subscriptions` subscribers of webhook `name` (at `receiver_url`, by default the
    release's receiver) and update them at RATE per second until stopped; return once the
    stream flows."""
    subscribers = enrol_subscribers(
        journey.stripe,
        journey.api_key,
        receiver_url or journey.receiver_url,
        journey.receipts_key(name),
        subscriptions,
    )
    traffic = SubscriptionTraffic(
        journey.client(), subscribers, rate=RATE, max_seconds=TRAFFIC_SECONDS
    ).start()
    traffic.wait_for(3)
    return traffic


def stop_traffic(traffic: SubscriptionTraffic) -> None:
    traffic.stop()
    assert not traffic.errors, traffic.errors


def record(row: Row, tally: Tally, *, trials: int, crashes: int, extra_twice: int = 0) -> None:
    """Add a run's counts to its ledger row: events Stripe emitted, those never applied and
    those applied more than once (plus `extra_twice`: duplicate or orphaned endpoints)."""
    row.add(
        trials=trials,
        events_sent=tally.events_sent,
        lost=len(tally.unapplied),
        applied_twice=len(tally.applied_twice) + extra_twice,
        crashes=crashes,
    )


def count_and_check(
    journey: Journey,
    name: str,
    row: Row,
    traffic: SubscriptionTraffic,
    *,
    endpoint: str,
    trials: int,
) -> None:
    """Count webhook `name`'s books into `row` (each trial one fault caused), then check that
    the traffic flowed and that every event was applied exactly once."""
    tally = journey.tally(name, old_endpoint=endpoint, new_enabled_since=0)
    record(row, tally, trials=trials, crashes=trials)
    assert tally.events_sent >= traffic.sent > 10
    assert tally.problems() == {}, explain(tally)


def explain(tally: Tally) -> str:
    """The tally's problems, short enough for an assertion message."""
    return json.dumps(tally.problems(), default=str)[:6000]


def delete_operator_pods(
    release: ChartRelease, watch: RotationWatch, *, deleted: list[str]
) -> None:
    """Delete the operator's running Pods at once (no grace: as a node losing them would),
    once there are some that are not among `deleted` (the replacement of an earlier deletion);
    add them to `deleted`. It does not wait for the new Pod: that one carries on at once."""
    pods = poll(
        "a running operator Pod",
        lambda: [pod for pod in release.pods("operator") if pod not in deleted],
        timeout=180,
    )
    watch.delete_pods(release.namespace, pods)
    deleted.extend(pods)


def wait_component_ready(
    release: ChartRelease, component: str, *, replaced: list[str], timeout: float = 180
) -> None:
    """Wait until `component`'s Pods are Ready and none of them is one of `replaced`."""
    poll(
        f"a new {component} Pod, Ready",
        lambda: (
            (pods := release.pods(component))
            and set(pods).isdisjoint(replaced)
            and release.kubectl(
                "wait",
                "--for=condition=Ready",
                "pod",
                *pods,
                "-n",
                release.namespace,
                "--timeout=5s",
                check=False,
            ).returncode
            == 0
        ),
        timeout=timeout,
    )


class RotationWatch:
    """The API server asked directly (a kubectl process takes a few hundred milliseconds to
    start on a busy machine; a step of a rotation may last a second): a webhook's `Rotating`
    reason, and the operator's Pods deleted with no grace."""

    def __init__(self, node: NodeCluster, namespace: str, name: str) -> None:
        assert node.control_plane is not None
        pki = node.control_plane.pki
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._http = httpx.Client(base_url=node.server, verify=context, timeout=10)
        self._path = f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{namespace}/{c.PLURAL}/{name}"

    def close(self) -> None:
        self._http.close()

    def step(self) -> str:
        """The reason of the webhook's Rotating condition ('' before the first)."""
        status: dict[str, Any] = self._http.get(self._path).raise_for_status().json()
        for item in (status.get("status") or {}).get("conditions") or []:
            if item["type"] == c.CONDITION_ROTATING:
                return str(item.get("reason") or "")
        return ""

    def delete_pods(self, namespace: str, pods: list[str]) -> None:
        """Delete `pods` at once, as `kubectl delete --grace-period=0 --force` does."""
        for pod in pods:
            self._http.request(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{pod}",
                json={"gracePeriodSeconds": 0},
            ).raise_for_status()
