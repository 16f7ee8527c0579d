"""Stripe's own stripe-mock, which checks every request against Stripe's OpenAPI specification.

stripe-mock keeps no state and invents its answers; what it is good for is refusing a request
whose path, parameters or types Stripe's API would refuse, with Stripe's error shape.
"""

from __future__ import annotations

import re
from pathlib import Path

from devstack.processes import ManagedProcess, StackError, tool, wait_until

START_TIMEOUT = 30.0

# stripe-mock prints one line per listener, e.g. "Listening for HTTP at address: 127.0.0.1:4242".
LISTENING = re.compile(r"Listening for (HTTPS?) at address: 127\.0\.0\.1:(\d+)")


class StripeMock:
    """stripe-mock on a loopback port the kernel picks; `.base_url` is its HTTP address."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.process: ManagedProcess | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise StackError("stripe-mock was never started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError("stripe-mock was never started")
        return self.process.pid

    def start(self) -> StripeMock:
        """Start stripe-mock and return once it listens."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Port 0 lets the kernel pick, so no other process can take the port between our choice
        # and stripe-mock's bind. HTTPS is pinned to loopback too: left unset, stripe-mock also
        # opens its default HTTPS port on every interface.
        argv = [
            str(tool("stripe-mock")),
            "-http-addr",
            "127.0.0.1:0",
            "-https-addr",
            "127.0.0.1:0",
        ]
        log = self.workdir / "stripe-mock.log"
        log.unlink(missing_ok=True)  # the port is read from this log: no lines from a past run
        self.process = ManagedProcess("stripe-mock", argv, log)
        self.process.start()
        process = self.process
        try:
            wait_until(
                lambda: not process.alive() or self._read_port() is not None,
                timeout=START_TIMEOUT,
                what="stripe-mock",
            )
            process.check_alive()  # an early exit ends the wait; say why, with its log
        except BaseException:
            self.stop()  # a process that never got ready must not linger
            raise
        return self

    def _read_port(self) -> int | None:
        if self.process is None:
            return None
        for protocol, port in LISTENING.findall(self.process.log_tail(lines=50)):
            if protocol == "HTTP":
                self.port = int(port)
                return self.port
        return None

    def stop(self) -> None:
        """Stop stripe-mock by PID."""
        if self.process is not None:
            self.process.stop()
