"""Faults of the real node under Stripe's traffic, each counted in the reliability ledger
(docs/reliability.md): containerd restarted, the kubelet restarted, the operator's Pod deleted
at each step of a rotation, the receiver's aggregated Secret deleted by hand, and the
receiver's SQLite volume full. Each counts every event Stripe emitted against the receiver's
books (devstack/project/rotation/tally.py): 0 lost, 0 applied twice."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.node.cluster import NodeCluster
from devstack.processes import poll
from devstack.project.rotation.tally import count, processed_event_ids, receiver_records
from devstack.project.rotation.timeline import EndpointTimeline
from devstack.project.rotation.traffic import emitted_event_ids
from stripe_webhook_operator.settings import DEFAULT_RECEIVER_SECRET_NAME
from tests.node.faults import (
    RotationWatch,
    count_and_check,
    delete_operator_pods,
    explain,
    record,
    start_traffic,
    stop_traffic,
    wait_component_ready,
)
from tests.node.journey import Journey, webhook
from tests.reliability.ledger import TIMEOUT, Ledger, trials

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

ROTATION_STEPS = ("Creating", "Propagating", "Enabling", "Overlap")


def _container_ids(journey: Journey) -> dict[str, str]:
    """The container id of each of the release's operator and receiver Pods, by Pod name."""
    raw = journey.release.kubectl(
        "get",
        "pods",
        "-n",
        journey.release.namespace,
        "--selector=app.kubernetes.io/component in (operator,receiver)",
        "-o",
        "json",
    ).stdout
    return {
        pod["metadata"]["name"]: status.get("containerID", "")
        for pod in json.loads(raw)["items"]
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    }


def _restarted_under_traffic(
    journey: Journey, ledger: Ledger, scenario: str, restart: Callable[[], None], name: str
) -> None:
    row = ledger.row(scenario)
    journey.apply(webhook(name))
    before = journey.wait_ready(name)
    containers = _container_ids(journey)
    traffic = start_traffic(journey, name, 2)
    runs = trials(1, 3)
    try:
        for _ in range(runs):
            restart()
            # The node's processes were replaced, the Pods' were not: the same containers serve.
            assert _container_ids(journey) == containers
            # The new kubelet reaches the new containerd: a command runs in the receiver's Pod
            # (once a restarted kubelet has read its Pods back from the API server).
            (pod,) = journey.release.receiver_pods()
            poll(
                "a command run in the receiver's Pod",
                lambda pod=pod: (
                    journey.release.kubectl(
                        "exec", pod, "-n", journey.release.namespace, "--", "true", check=False
                    ).returncode
                    == 0
                ),
                timeout=60,
            )
            traffic.wait_for(10)
    finally:
        stop_traffic(traffic)
    count_and_check(journey, name, row, traffic, endpoint=str(before["endpointId"]), trials=runs)


def test_containerd_restarted_under_traffic_loses_nothing(
    journey: Journey, node_cluster: NodeCluster, ledger: Ledger
) -> None:
    _restarted_under_traffic(
        journey,
        ledger,
        "Node: containerd restarted under traffic",
        node_cluster.restart_containerd,
        "runtime",
    )


def test_kubelet_restarted_under_traffic_loses_nothing(
    journey: Journey, node_cluster: NodeCluster, ledger: Ledger
) -> None:
    _restarted_under_traffic(
        journey,
        ledger,
        "Node: kubelet restarted under traffic",
        node_cluster.restart_kubelet,
        "kubelet",
    )


def test_operator_pod_deleted_at_each_rotation_step_loses_nothing(
    journey: Journey, node_cluster: NodeCluster, ledger: Ledger
) -> None:
    row = ledger.row("Node: operator Pod deleted at each rotation step, under traffic")
    name = "steps"
    journey.apply(webhook(name))
    before = journey.wait_ready(name)
    timeline = EndpointTimeline(journey.stripe.base_url, journey.api_key).start()
    watch = RotationWatch(node_cluster, journey.namespace, name)
    traffic = start_traffic(journey, name, 3)
    runs = trials(1, 2)
    killed: list[str] = []
    deleted: list[str] = []
    try:
        for run in range(runs):
            # Each endpoint write (create, disable, enable) takes 4 s at Stripe: its step lasts
            # long enough to be seen and to lose the operator in the middle of it.
            journey.stripe.inject_fault(
                journey.api_key,
                path_prefix="/v1/webhook_endpoints",
                method="POST",
                work_latency=4.0,
                count=None,
            )
            journey.plugin("rotate", name, "--overlap=20s")
            for step in ROTATION_STEPS:
                later = ROTATION_STEPS[ROTATION_STEPS.index(step) :]
                seen = poll(
                    f"rotation {run + 1} at {step} or later",
                    lambda later=later: (r := watch.step()) in later and r,
                    timeout=240,
                )
                if seen != step:
                    continue
                delete_operator_pods(journey.release, watch, deleted=deleted)
                killed.append(step)
                if step == "Enabling":
                    journey.stripe.clear_faults(journey.api_key)
            poll(
                f"rotation {run + 1} to end",
                lambda run=run: (
                    journey.status(name).get("secretVersion") == before["secretVersion"] + run + 1
                    and watch.step() == "Idle"
                ),
                timeout=240,
            )
        traffic.wait_for(10)
        after = journey.status(name)
    finally:
        stop_traffic(traffic)
        timeline.stop()
        watch.close()
        wait_component_ready(journey.release, "operator", replaced=deleted)
    endpoints = journey.client().v1.webhook_endpoints.list(params={"limit": 100}).data
    ours = [e.id for e in endpoints if e.metadata.to_dict().get("k8s-name") == name]
    tally = journey.tally(
        name,
        old_endpoint=str(before["endpointId"]),
        new_enabled_since=timeline.enabled_since(str(after["endpointId"])),
    )
    record(row, tally, trials=runs, crashes=len(killed), extra_twice=len(ours) - 1)
    assert ours == [after["endpointId"]]
    assert tally.events_sent >= traffic.sent > 15
    assert tally.problems() == {}, explain(tally)
    # Every step of every rotation lost its operator (a step passed before it was seen would
    # be missing here).
    assert killed == list(ROTATION_STEPS) * runs


def _receiver_secret(journey: Journey) -> dict[str, str]:
    release = journey.release
    found = release.kubectl(
        "get",
        "secret",
        DEFAULT_RECEIVER_SECRET_NAME,
        "-n",
        release.namespace,
        "-o",
        "jsonpath={.data}",
        check=False,
    )
    return dict(json.loads(found.stdout or "{}")) if found.returncode == 0 else {}


def test_aggregated_secret_deleted_by_hand_is_written_back_at_once(
    journey: Journey, ledger: Ledger
) -> None:
    row = ledger.row("Node: aggregated receiver Secret deleted by hand, under traffic")
    name = "aggregated"
    key = f"{journey.namespace}.{name}.json"
    journey.apply(webhook(name))
    before = journey.wait_ready(name)
    traffic = start_traffic(journey, name, 2)
    runs = trials(1, 3)
    try:
        for _ in range(runs):
            entry = _receiver_secret(journey)[key]
            journey.release.kubectl(
                "delete",
                "secret",
                DEFAULT_RECEIVER_SECRET_NAME,
                "-n",
                journey.release.namespace,
            )
            # The operator's drift interval is the chart's 5 minutes: only the deletion itself
            # brings the Secret back within this wait.
            poll(
                "the receiver's Secret written back with the webhook's entry",
                lambda entry=entry: _receiver_secret(journey).get(key) == entry,
                timeout=60,
            )
            traffic.wait_for(15)
    finally:
        stop_traffic(traffic)
    count_and_check(journey, name, row, traffic, endpoint=str(before["endpointId"]), trials=runs)


# --- the receiver's volume full ------------------------------------------------------------

SMALL_VOLUME = "4Mi"


def _data_volume(journey: Journey, volume: dict[str, Any]) -> None:
    """Give the release's receiver Deployment `volume` as its `data` volume (its SQLite
    file's), and wait until its new Pod is Ready."""
    release = journey.release
    old = release.receiver_pods()
    patch = {"spec": {"template": {"spec": {"volumes": [{"name": "data", **volume}]}}}}
    release.kubectl(
        "patch",
        "deployment",
        release.receiver_deployment,
        "-n",
        release.namespace,
        "--type=strategic",
        "-p",
        json.dumps(patch),
    )
    wait_component_ready(release, "receiver", replaced=old)


def _data_dir(journey: Journey, node: NodeCluster) -> Path:
    """The receiver Pod's data volume (an emptyDir), as the host sees it in the node's mounts."""
    release = journey.release
    (pod,) = release.receiver_pods()
    uid = release.kubectl(
        "get", "pod", pod, "-n", release.namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout.strip()
    assert node.mounts is not None
    volumes = f"/proc/{node.mounts.pid}/root/var/lib/kubelet/pods/{uid}/volumes"
    return Path(volumes) / "kubernetes.io~empty-dir" / "data"


def _fill(directory: Path) -> Path:
    """Write a file into `directory` until its filesystem has no byte left; return it."""
    filler = directory / "filler"
    with filler.open("ab", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                continue
    return filler


def test_receiver_volume_full_answers_503_and_applies_the_retries_once_freed(
    journey: Journey, node_cluster: NodeCluster, ledger: Ledger, tmp_path: Path
) -> None:
    row = ledger.row("Node: receiver's SQLite volume full, then freed, under traffic")
    release = journey.release
    claim = {"claimName": f"{release.receiver_service}-data"}
    # The release's own receiver, its SQLite file moved to a memory-backed emptyDir of
    # SMALL_VOLUME (the kubelet sizes its tmpfs to the limit): a volume that fills up.
    _data_volume(
        journey,
        {
            "persistentVolumeClaim": None,
            "emptyDir": {"medium": "Memory", "sizeLimit": SMALL_VOLUME},
        },
    )
    try:
        name = "cramped"
        journey.apply(webhook(name))
        journey.wait_ready(name)
        data = _data_dir(journey, node_cluster)
        traffic = start_traffic(journey, name, 2)
        runs = trials(1, 3)

        def refused() -> int:
            attempts = journey.stripe.deliveries(journey.api_key)
            return sum(1 for attempt in attempts if attempt["status"] == 503)

        try:
            for _ in range(runs):
                earlier = refused()
                filler = _fill(data)
                assert os.statvfs(data).f_bavail == 0
                poll(
                    "a delivery refused 503 while the volume is full",
                    lambda earlier=earlier: refused() > earlier,
                    timeout=60,
                )
                traffic.wait_for(10)
                filler.unlink()
                traffic.wait_for(10)
        finally:
            stop_traffic(traffic)
        attempts = journey.stripe.wait_until_settled(journey.api_key, timeout=120)
        webhook_id = f"{journey.namespace}/{name}"
        # SQLite follows the /proc/PID/root link (out of the node's mounts): read a copy, made
        # once the traffic has settled.
        database = tmp_path / "receiver.db"
        for suffix in ("", "-wal"):
            if (data / f"receiver.db{suffix}").exists():
                shutil.copyfile(data / f"receiver.db{suffix}", tmp_path / f"receiver.db{suffix}")
        # Nothing half-written: the file is whole (its log folded in first, in the copy).
        connection = sqlite3.connect(database, timeout=10)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
        finally:
            connection.close()
        tally = count(
            emitted_event_ids(journey.client()),
            attempts,
            receiver_records(database, webhook_id),
            processed_event_ids(database, webhook_id),
            old_endpoint="",
            new_enabled_since=0,
        )
        record(row, tally, trials=runs, crashes=runs)
        assert integrity == "ok"
        assert tally.events_sent >= traffic.sent > 15
        assert tally.problems() == {}, explain(tally)
    finally:
        _data_volume(journey, {"emptyDir": None, "persistentVolumeClaim": claim})
