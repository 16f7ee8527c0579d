"""The launcher of `stripe-webhook-operator`: one replica as a real subprocess (so a SIGKILL
is a real crash), watching one namespace, its /healthz and /metrics on 127.0.0.1. Tests,
benchmarks and the stack's own scenarios all start the operator through it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from devstack.processes import VENV_BIN, ManagedProcess, free_port, wait_answering

OPERATOR_SCRIPT: Final = VENV_BIN / "stripe-webhook-operator"
# The operator's timings on the local stack: quick to react, so a test or a scenario is not
# held up by production intervals (drift checks every 5 minutes, watches of a minute).
QUICK: Final = (
    "--public-base-url=http://127.0.0.1:9",
    "--drift-interval=2s",
    "--drift-jitter=200ms",
    "--propagation-interval=200ms",
    "--watch-server-timeout=20s",
    "--watch-client-timeout=30s",
)


@dataclass
class OperatorProcess:
    """One operator replica watching `namespace` (None: every namespace, the receiver's
    Secret then in the `--receiver-namespace` of `extra_args`), with its log in `log_dir`.

    `settings` are its timings and options (QUICK by default), `extra_args` flags that come
    after them (the last of a flag wins). `env` is the environment besides KUBECONFIG and
    STRIPE_API_BASE (by default only a PATH and a HOME); `wrapper` goes before the program
    (a profiler, say)."""

    kubeconfig: Path
    stripe_base: str
    namespace: str | None
    log_dir: Path
    cluster_id: str
    extra_args: Sequence[str] = ()
    settings: Sequence[str] = QUICK
    metrics_port: int = field(default_factory=free_port)
    env: Mapping[str, str] | None = None
    wrapper: Sequence[str] = ()
    cwd: Path | None = None
    name: str = ""
    process: ManagedProcess | None = None

    def argv(self) -> list[str]:
        """Return the command line."""
        return [
            *self.wrapper,
            str(OPERATOR_SCRIPT),
            *(
                [f"--namespace={self.namespace}", f"--receiver-namespace={self.namespace}"]
                if self.namespace is not None
                else []
            ),
            f"--cluster-id={self.cluster_id}",
            "--metrics-host=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            *self.settings,
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        """Return the environment the operator runs with."""
        base = {"PATH": "/usr/bin:/bin", "HOME": str(self.log_dir)} if self.env is None else {}
        return {
            **base,
            **(self.env or {}),
            "KUBECONFIG": str(self.kubeconfig),
            "STRIPE_API_BASE": self.stripe_base,
        }

    @property
    def url(self) -> str:
        """The base URL of its /healthz and /metrics."""
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the operator was never started"
        return self.process.pid

    def start(self, wait_ready: bool = True) -> OperatorProcess:
        """Start the operator and (with `wait_ready`) wait until its /healthz answers 200."""
        name = self.name or f"operator-{self.metrics_port}"
        self.process = ManagedProcess(
            name, self.argv(), self.log_dir / f"{name}.log", env=self.environment(), cwd=self.cwd
        ).start()
        if wait_ready:
            self.wait_healthy()
        return self

    def healthy(self) -> bool:
        """Return whether /healthz answers 200 now."""
        try:
            response = httpx.get(f"{self.url}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait for /healthz 200; fail at once with the log if the process exits."""
        assert self.process is not None, "the operator was never started"
        wait_answering(self.process, f"{self.url}/healthz", timeout=timeout)

    def metrics(self) -> str:
        """Return what /metrics answers."""
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def log(self) -> str:
        """Return its whole log."""
        assert self.process is not None, "the operator was never started"
        return self.process.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM it (SIGKILL after `timeout`)."""
        if self.process is not None:
            self.process.stop(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the operator (no cleanup of any kind)."""
        if self.process is not None:
            self.process.kill()
