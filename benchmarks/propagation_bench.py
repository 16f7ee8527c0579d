"""Propagation benchmark: how long a new or rotated signing secret takes to reach the receiver
Pod through the kubelet's Secret volume, with and without the operator's nudge.

On the real node (devstack.node: kubelet with its default `syncFrequency` of one minute,
containerd, the chart installed with `helm install --wait`), for each mode: apply N
StripeWebhooks at once (two Stripe accounts, so that each rotation has room for its second
endpoint) and time each from `kubectl apply` to `Ready`; then ask all of them to rotate at once
and time each until its new endpoint is enabled (the next secret version, the old one in its
overlap). The first mode is the chart's default (`operator.nudgeReceiverPods=true`: the
operator annotates the receiver Pods after each write of their Secret, which makes the kubelet
remount it at once); the second the same release upgraded with the nudge off, so the kubelet
finds the change on its own periodic sync. Prints the table and writes it into
docs/benchmarks.md (section `propagation`).

    make bench-propagation   (or: PYTHONPATH=stack .venv/bin/python -m benchmarks.propagation_bench
                              [--webhooks 10])
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from devstack.cluster.kubectl import Kubectl
from devstack.node.cluster import NodeCluster
from devstack.processes import StackError
from devstack.project.objects import api_key_secret, condition, rotation_step, webhook_manifest
from devstack.release import ChartRelease
from devstack.stripe_emulator.launcher import EmulatorProcess

SECTION = "propagation"
ACCOUNTS = 2
TARGET_MEDIAN = 5.0  # seconds, with the kubelet's default syncFrequency
TIMEOUT = 300.0
POLL = 0.2


@dataclass(frozen=True)
class Mode:
    name: str
    nudge: bool
    ready: list[float]
    rotated: list[float]


def _seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def _webhooks(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    raw = kubectl("get", "stripewebhooks", "-n", namespace, "-o", "json").stdout
    return {item["metadata"]["name"]: item for item in json.loads(raw)["items"]}


def _wait_each(
    kubectl: Kubectl,
    namespace: str,
    names: list[str],
    started: float,
    done: Callable[[dict[str, Any]], bool],
) -> list[float]:
    """Poll until `done(body)` holds for every webhook; return each one's seconds."""
    finished: dict[str, float] = {}
    deadline = started + TIMEOUT
    while len(finished) < len(names):
        if time.monotonic() > deadline:
            missing = sorted(set(names) - set(finished))
            raise StackError(f"{len(missing)} webhooks never got there: {missing}")
        bodies = _webhooks(kubectl, namespace)
        now = time.monotonic()
        for name in names:
            if name not in finished and name in bodies and done(bodies[name]):
                finished[name] = now - started
        time.sleep(POLL)
    return [finished[name] for name in names]


def measure(kubectl: Kubectl, count: int, nudge: bool) -> Mode:
    """Apply `count` webhooks, time them to Ready; rotate them all, time each to enabled."""
    namespace = f"propagation-{'nudge' if nudge else 'kubelet'}-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    names = [f"shop-{index}" for index in range(count)]
    keys = [f"sk_test_prop{secrets.token_hex(16)}" for _ in range(ACCOUNTS)]
    for index, key in enumerate(keys):
        kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=api_key_secret(namespace, key, f"key-{index}"),
        )
    manifests = [
        json.loads(
            webhook_manifest(
                namespace,
                name,
                apiKeySecretRef={"name": f"key-{index % ACCOUNTS}", "key": "api-key"},
            )
        )
        for index, name in enumerate(names)
    ]
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    started = time.monotonic()
    kubectl("apply", "-n", namespace, "-f", "-", input=document)
    ready = _wait_each(
        kubectl,
        namespace,
        names,
        started,
        lambda body: condition(body, "Ready").get("status") == "True",
    )
    versions = {
        name: int(body["status"]["secretVersion"])
        for name, body in _webhooks(kubectl, namespace).items()
    }
    started = time.monotonic()
    kubectl(
        "annotate",
        "stripewebhooks",
        "--all",
        "-n",
        namespace,
        "--overwrite",
        f"stripe.operator.dev/rotate=bench-{secrets.token_hex(3)}",
    )
    rotated = _wait_each(
        kubectl,
        namespace,
        names,
        started,
        lambda body: (
            int(body["status"].get("secretVersion") or 0) == versions[body["metadata"]["name"]] + 1
            and rotation_step(body) in ("Overlap", "Idle")
        ),
    )
    kubectl("delete", "namespace", namespace, "--wait=false")
    return Mode("nudge (chart default)" if nudge else "kubelet sync only", nudge, ready, rotated)


def render(modes: Sequence[Mode], webhooks: int, load_at_start: str, sync: str) -> str:
    rows = [
        [
            mode.name,
            _seconds(mode.ready),
            _seconds(mode.rotated),
            report.verdict(
                statistics.median(mode.ready) <= TARGET_MEDIAN
                and statistics.median(mode.rotated) <= TARGET_MEDIAN
            )
            if mode.nudge
            else report.DASH,
        ]
        for mode in modes
    ]
    lines = [
        "## Secret propagation on the node",
        "",
        f"{webhooks} StripeWebhooks applied at once, then all rotated at once, on the real node "
        f"(kubelet `syncFrequency` {sync}), the chart installed with `helm install --wait`. "
        "Seconds, median / max over the webhooks. Target: median ≤ "
        f"{TARGET_MEDIAN:.0f} s with the nudge (`make bench-propagation`).",
        "",
        report.markdown_table(
            ["mode", "applied → Ready", "rotation → new endpoint enabled", "target"], rows
        ),
        "",
        *report.closing_sections(
            report.machine_facts(load_at_start),
            [
                "Without the nudge the new secret waits for the kubelet's periodic sync of the "
                "Pod (up to `syncFrequency`, plus its cache): every new webhook stays not Ready "
                "and every rotation keeps its new endpoint disabled that long.",
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=10)
    report.add_output_option(parser)
    options = parser.parse_args(argv)
    load_at_start = report.load_text()
    workdir = Path(tempfile.mkdtemp(prefix="bench-propagation-"))
    node = NodeCluster(workdir / "node")
    emulator: EmulatorProcess | None = None
    release: ChartRelease | None = None
    try:
        node.start()
        emulator = node.start_emulator(workdir / "stripe-emulator")
        kubectl = node.kubectl()
        release = ChartRelease(kubectl, "stripe-system", emulator.inside_url).install()
        modes = [measure(kubectl, options.webhooks, nudge=True)]
        release.upgrade("operator.nudgeReceiverPods=false")
        modes.append(measure(kubectl, options.webhooks, nudge=False))
    finally:
        if release is not None:
            release.uninstall()
        if emulator is not None:
            emulator.stop()
        node.stop()
    report.publish(
        SECTION,
        render(modes, options.webhooks, load_at_start, "1m (the default)"),
        report.output_path(options.output),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
