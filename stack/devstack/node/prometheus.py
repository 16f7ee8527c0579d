"""Debian's Prometheus inside the node, scraping a release of the chart the way its
ServiceMonitors describe, as the Prometheus Operator would configure a Prometheus in a cluster.

The node's cluster has no Prometheus Operator and no `monitoring.coreos.com` CRDs, so the
ServiceMonitors come from `helm template` with the release's own values (and
`serviceMonitor.enabled`); devstack.services.scrape_config turns them into the Operator's scrape
jobs, with the same ports, paths and relabelling. Prometheus runs inside the node's network
namespace, where Pod IPs are routed, with a temporary data directory; its targets are the Pods
behind the release's Services, kept current in file_sd files by a TargetWatcher as Pods come
and go. The host reaches its HTTP API through a forwarder of the node (`server.url`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devstack.cluster.kubectl import api_client
from devstack.node.cluster import NodeCluster
from devstack.processes import StackError
from devstack.release import ChartRelease
from devstack.services.prometheus import PrometheusServer
from devstack.services.scrape_config import (
    RULES_FILE,
    FileDiscovery,
    Manifest,
    prometheus_config,
    service_monitors,
    watched_namespaces,
)
from devstack.services.target_watcher import TargetWatcher

SCRAPE_INTERVAL = "1s"


class NodePrometheus:
    """Prometheus inside `node` scraping `release`, scraped and evaluated every `interval`,
    with `rule_files` (the chart's alerting rules) loaded."""

    def __init__(
        self,
        node: NodeCluster,
        release: ChartRelease,
        workdir: Path,
        *,
        interval: str = SCRAPE_INTERVAL,
        rule_files: Sequence[Path] = (RULES_FILE,),
    ) -> None:
        self.node = node
        self.release = release
        self.workdir = workdir
        self.interval = interval
        self.rule_files = tuple(rule_files)
        self.discovery = FileDiscovery(workdir / "targets")
        self.monitors: list[Manifest] = []
        self.watcher: TargetWatcher | None = None
        self._server: PrometheusServer | None = None

    @property
    def server(self) -> PrometheusServer:
        if self._server is None:
            raise StackError("the node's Prometheus was never started")
        return self._server

    def start(self) -> NodePrometheus:
        """Render the ServiceMonitors, publish their targets, start Prometheus; on any
        failure stop what had started and raise."""
        try:
            self.monitors = service_monitors(
                self.release.rendered(
                    "serviceMonitor.enabled=true",
                    f"serviceMonitor.interval={self.interval}",
                    f"serviceMonitor.scrapeTimeout={self.interval}",
                )
            )
            config = prometheus_config(
                self.monitors,
                self.discovery,
                scrape_interval=self.interval,
                evaluation_interval=self.interval,
                rule_files=self.rule_files,
            )
            self.watcher = TargetWatcher(
                api_client(self.node.kubeconfig), self.discovery, watched_namespaces(self.monitors)
            ).start()
            self._server = PrometheusServer(self.workdir / "prometheus", config, node=self.node)
            self._server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Prometheus by PID (its data directory goes with it), then the watcher."""
        if self._server is not None:
            self._server.stop()
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
