"""Start and stop the emulator as a child process (pytest fixtures and `make dev-up`)."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from devstack.processes import REPO_ROOT, ManagedProcess, StackError, free_port
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
    ) -> None:
        self.workdir = workdir
        self.rate_limit = rate_limit
        self.retry_schedule = tuple(retry_schedule)
        self.delivery_timeout = delivery_timeout
        self.port = port or free_port()
        self._process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
            "--port",
            str(self.port),
            "--retry-schedule",
            ",".join(str(wait) for wait in self.retry_schedule),
            "--delivery-timeout",
            str(self.delivery_timeout),
        ]
        if self.rate_limit is not None:
            argv += ["--rate-limit", str(self.rate_limit)]
        return argv

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        """Start the process and wait until `/_emulator/health` answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = _child_env()
        self._process = ManagedProcess(
            "stripe-emulator",
            self.argv(),
            self.workdir / "stripe-emulator.log",
            env=env,
            cwd=REPO_ROOT,
        ).start()
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


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    stack = str(REPO_ROOT / "stack")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([stack, *[p for p in paths if p != stack]])
    return env
