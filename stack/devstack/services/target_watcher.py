"""Keeps a Prometheus's file_sd files holding what its Kubernetes discovery (role `endpoints`)
would find in some namespaces, while Pods come and go.

Debian's Prometheus cannot watch the API server itself (devstack.services.scrape_config). A
`TargetWatcher` lists each namespace's Endpoints, Services and Pods from the API server every
`interval` (half a second: well inside the scrape interval, and cheaper here than three watch
streams per namespace), turns them into targets (devstack.services.endpoints_role) and
rewrites a namespace's file only when its targets changed; Prometheus re-reads a file when it
is replaced. It runs as a thread of the process that starts it and ends with `stop()`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import httpx

from devstack.services.endpoints_role import TargetGroup, target_groups
from devstack.services.scrape_config import FileDiscovery

INTERVAL = 0.5
KINDS = ("endpoints", "services", "pods")


class TargetWatcher:
    """Publishes the endpoints-role targets of `namespaces` into `discovery`'s files."""

    def __init__(
        self,
        api: httpx.Client,
        discovery: FileDiscovery,
        namespaces: Sequence[str],
        interval: float = INTERVAL,
    ) -> None:
        self.api = api
        self.discovery = discovery
        self.namespaces = tuple(namespaces)
        self.interval = interval
        self.refreshes = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def targets(self, namespace: str) -> list[TargetGroup]:
        """What Kubernetes discovery would find in `namespace` now."""
        lists: dict[str, list[dict[str, Any]]] = {}
        for kind in KINDS:
            answer = self.api.get(f"/api/v1/namespaces/{namespace}/{kind}")
            answer.raise_for_status()
            lists[kind] = list(answer.json().get("items") or [])
        return target_groups(lists["endpoints"], lists["services"], lists["pods"])

    def refresh(self) -> None:
        """Publish every namespace's targets once, now."""
        for namespace in self.namespaces:
            self.discovery.publish_groups(namespace, self.targets(namespace))
        self.refreshes += 1

    def start(self) -> TargetWatcher:
        """Publish once (so Prometheus starts with the targets), then keep publishing from a
        thread until `stop()`."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="target-watcher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
                self.last_error = None
            except (httpx.HTTPError, OSError, ValueError) as exc:
                # The API server busy or restarting: the files keep the last targets, as
                # Prometheus's own discovery keeps them while its watch reconnects.
                self.last_error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        """Stop publishing (the files stay as they are) and close the API client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.api.close()
