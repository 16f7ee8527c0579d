"""`python -m devstack.node.serve DIR`: the node's cluster and the Stripe emulator inside it,
held up until SIGTERM, then stopped with everything they made (`make dev-up` runs it).

A node is more than processes: a network and a mount namespace, a cgroup tree, the kubelet's
machine-wide settings. Only NodeCluster.stop() undoes all of it, so the background stack keeps
one process that owns the node and runs that stop when told to. Once up it writes
`DIR/node.json`: the kubeconfig reaching the API server from the host, the emulator's URLs
(from the host, and from Pods), the chart values for the local image, and the PIDs it leads.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import yaml

from devstack.node.cluster import NodeCluster
from devstack.processes import StackError
from devstack.release import IMAGE_REPOSITORY, IMAGE_TAG, receiver_base_url
from devstack.stripe_emulator.launcher import EmulatorProcess

READY_FILE = "node.json"
VALUES_FILE = "values-local.yaml"
# The release a user installs first (README): its Service names the endpoints' base URL.
RELEASE = "stripe-webhook-operator"
RELEASE_NAMESPACE = "stripe-system"


def local_values(stripe_inside: str) -> dict[str, object]:
    """Chart values for the local node: the locally built image, the emulator, and endpoint
    URLs of the receiver Service (which the emulator reaches by its DNS name)."""
    return {
        "image": {
            "repository": IMAGE_REPOSITORY,
            "tag": IMAGE_TAG,
            "pullPolicy": "IfNotPresent",
        },
        "stripe": {"apiBase": stripe_inside},
        "publicBaseUrl": receiver_base_url(RELEASE, RELEASE_NAMESPACE),
    }


def serve(directory: Path) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    node = NodeCluster(directory / "node")
    emulator: EmulatorProcess | None = None
    try:
        node.start()
        emulator = node.start_emulator(directory / "stripe-emulator")
        (directory / VALUES_FILE).write_text(
            yaml.safe_dump(local_values(emulator.inside_url), sort_keys=False)
        )
        ready = {
            "kubeconfig": str(node.kubeconfig),
            "server": node.server,
            "stripe_api_base": emulator.base_url,
            "stripe_api_base_in_cluster": emulator.inside_url,
            "values": str(directory / VALUES_FILE),
            "pids": node.pids(),
        }
        partial = directory / (READY_FILE + ".partial")
        partial.write_text(json.dumps(ready, indent=2))
        partial.rename(directory / READY_FILE)
        stop.wait()
    except StackError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
        node.stop()
        left = node.leftovers()
        if left:
            print(f"left behind: {', '.join(left)}", file=sys.stderr, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.node.serve")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    return serve(args.directory)


if __name__ == "__main__":
    sys.exit(main())
