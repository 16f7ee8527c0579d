"""Prometheus from Debian's packages on a free loopback port, with a data directory of its own
that goes when it stops; and the parts of its HTTP API the tests read (queries, targets, alerts).

The configuration is the caller's (devstack.services.scrape_config makes one from the chart's
ServiceMonitors). Prometheus runs as the calling user: unlike PostgreSQL it does not mind root.
Given a node (devstack.node.cluster), it runs inside the node's namespaces instead, on the
namespace's own loopback, where it reaches Pod IPs as a Prometheus in a cluster does; the host
reaches its HTTP API through a forwarder of the node (`url`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from devstack.processes import Forwarded, ManagedProcess, Node, StackError, free_port

START_TIMEOUT = 30.0
BINARY = "prometheus"


def prometheus_binary() -> Path:
    """Return Debian's `prometheus`, or explain how to install it."""
    found = shutil.which(BINARY)
    if found is None:
        raise StackError(
            "Prometheus is not installed; run `make system-packages` "
            "(or `apt-get install prometheus`)."
        )
    return Path(found)


class PrometheusServer:
    """One Prometheus on 127.0.0.1 (of the node's namespace, given a `node`) with `config` as
    its prometheus.yml; `.url` reaches it from the host once started."""

    def __init__(
        self, workdir: Path, config: str, port: int | None = None, node: Node | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.config = config
        self.port = port if port is not None else free_port()
        self.node = node
        self.data_dir: Path | None = None
        self.process: ManagedProcess | None = None
        self._forwarder: Forwarded | None = None

    @property
    def url(self) -> str:
        if self._forwarder is not None:
            return self._forwarder.url()
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError("Prometheus was never started")
        return self.process.pid

    def start(self) -> PrometheusServer:
        """Write the configuration, start Prometheus and return once it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config)
        self.data_dir = Path(tempfile.mkdtemp(prefix="devstack-prometheus-", dir=self.workdir))
        argv = [
            str(prometheus_binary()),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        try:
            if self.node is None:
                log = self.workdir / "prometheus.log"
                self.process = ManagedProcess("prometheus", argv, log).start()
            else:
                self.process = self.node.run_inside(f"prometheus-{self.port}", argv)
                self._forwarder = self.node.expose("127.0.0.1", self.port)
            self.process.wait_ready(self._ready, timeout=START_TIMEOUT, what="Prometheus")
        except BaseException:
            self.stop()  # a process that never got ready must not linger
            raise
        return self

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def stop(self) -> None:
        """Stop Prometheus (and its forwarder) by PID and delete its data directory."""
        if self.process is not None:
            self.process.stop()
        if self._forwarder is not None:
            self._forwarder.stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    # --- the HTTP API ---------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """GET `/api/v1/<path>` and return its `data`, or raise with Prometheus's error."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise StackError(f"Prometheus refused {path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Evaluate an instant query; return its vector (a scalar comes back as one sample)."""
        data = self.api("query", query=expr, **({} if at is None else {"time": at}))
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Evaluate a range query; return its matrix (series with their `values`)."""
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        """Return the values of `label` on series matching `match`."""
        return list(self.api(f"label/{label}/values", **{"match[]": match}))

    def active_targets(self) -> list[dict[str, Any]]:
        """Return the targets Prometheus scrapes, with their labels and health."""
        return list(self.api("targets", state="active")["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        """Return the alerts pending or firing now."""
        return list(self.api("alerts")["alerts"])

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll `check` (which may query this server) until true; fail naming `what`, or with
        Prometheus's log if it exits meanwhile."""
        if self.process is None:
            raise StackError("Prometheus was never started")
        self.process.wait_ready(check, timeout=timeout, what=what, interval=0.2)

    def total(self, series: str) -> float:
        """The sum of `series` (a counter) as last scraped; 0 when it has no series yet."""
        result = self.query(f"sum({series})")
        return float(result[0]["value"][1]) if result else 0.0

    def wait_above(self, what: str, series: str, than: float, timeout: float = 60.0) -> None:
        """Wait until the scraped sum of the counter `series` is above `than`."""
        self.wait_for(what, lambda: self.total(series) > than, timeout)

    def wait_until_scraped(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until `count` targets have been scraped successfully; return the targets."""
        self.wait_for(
            f"{count} targets scraped by Prometheus",
            lambda: sum(t["health"] == "up" for t in self.active_targets()) >= count,
            timeout,
        )
        return self.active_targets()
