"""Start and stop the emulator as a child process (pytest fixtures, `make dev-up`, the demo).

By default it listens on a free port of 127.0.0.1. Given a node (devstack.node.cluster), it
runs inside the node's namespaces instead, on the node's address, where Pods reach it and
from where it delivers to Services by their cluster DNS names; the host then reaches it
through a forwarded 127.0.0.1 port (`base_url`), Pods at `inside_url`.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from devstack.processes import (
    REPO_ROOT,
    ManagedProcess,
    Node,
    StackError,
    free_port,
    stack_env,
)
from devstack.stripe_emulator.delivery import DEFAULT_RETRY_SCHEDULE


class EmulatorProcess:
    """`python -m devstack.stripe_emulator` on a free port of 127.0.0.1, its log in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        *,
        rate_limit: float | None = None,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        delivery_timeout: float = 10.0,
        port: int | None = None,
        host: str = "127.0.0.1",
        delivery_domain: str | None = None,
        node: Node | None = None,
    ) -> None:
        self.workdir = workdir
        self.host = host
        self.delivery_domain = delivery_domain
        self.node = node
        self._forwarded_url: str | None = None
        self.rate_limit = rate_limit
        self.retry_schedule = tuple(retry_schedule)
        self.delivery_timeout = delivery_timeout
        self.port = port or free_port()
        self._process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        """Where the host reaches it."""
        return self._forwarded_url or self.inside_url

    @property
    def inside_url(self) -> str:
        """Where it listens (inside the node, when it runs there)."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the Stripe emulator was never started")
        return self._process.pid

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "devstack.stripe_emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--retry-schedule",
            ",".join(str(wait) for wait in self.retry_schedule),
            "--delivery-timeout",
            str(self.delivery_timeout),
        ]
        if self.rate_limit is not None:
            argv += ["--rate-limit", str(self.rate_limit)]
        if self.delivery_domain is not None:
            argv += ["--delivery-domain", self.delivery_domain]
        return argv

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        """Start the process and wait until `/_emulator/health` answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = stack_env()
        if self.node is None:
            self._process = ManagedProcess(
                "stripe-emulator",
                self.argv(),
                self.workdir / "stripe-emulator.log",
                env=env,
                cwd=REPO_ROOT,
            ).start()
        else:
            self._process = self.node.run_inside(
                "stripe-emulator", self.argv(), env=env, cwd=REPO_ROOT
            )
            self._forwarded_url = self.node.expose(self.host, self.port).url()
        deadline = time.monotonic() + timeout
        while True:
            self._process.check_alive()
            if self._healthy():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"Stripe emulator not ready after {timeout:.0f} s")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/_emulator/health", timeout=1) as answer:
                return bool(json.load(answer)["ok"])
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def log_tail(self, lines: int = 30) -> str:
        return "(not started)" if self._process is None else self._process.log_tail(lines)
