"""A private network namespace: loopback plus a few extra addresses, reachable from nowhere else.

The API server refuses loopback (`127.0.0.0/8`, `::1`) and link-local addresses in
EndpointSlices, so a test of anything that reads Pod addresses from EndpointSlices needs servers
on other addresses. This module gives it a namespace of its own instead of touching the host's
network:

- The namespace has exactly one interface, its own `lo`; no veth pair, no bridge, no route.
  Extra addresses (one `/32` each, e.g. 10.251.0.2) are put on that `lo`. A packet sent to any
  of them, or to the namespace's 127.0.0.1, never leaves the namespace, and nothing outside it
  (the host, other namespaces, the machine's own 127.0.0.1) can reach a socket inside it: it is
  at least as private as the host's loopback, which every local process can reach.
- `create()` checks that `lo` is the only interface before anything starts, and `delete()`
  removes the namespace; once the last process in it has ended, the kernel drops its sockets.

Processes join the namespace by being started from a thread inside it: `entered()` moves the
calling thread in (setns(2) affects that thread only) and back out, and a child process is born
in its parent thread's namespaces. So the local stack's launchers (ManagedProcess, ControlPlane,
SecretProjector) run unchanged inside it, their PIDs are those of the processes themselves
(stopped by PID as anywhere else), and the test's own clients (kubectl, HTTP) run inside too.

Creating one needs `ip` (iproute2) and CAP_SYS_ADMIN (root); without them `create()` raises
StackError saying which command failed and why, so a test that needs it fails instead of
skipping.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import StackError, pid_running

# Where `ip netns add` bind-mounts a namespace so that it outlives its processes.
NETNS_RUN_DIR = Path("/run/netns")
# setns(2)'s nstype for a network namespace (CLONE_NEWNET in <sched.h>).
CLONE_NEWNET = 0x40000000
COMMAND_TIMEOUT = 15.0


def _setns(fd: int) -> None:
    """Move the calling thread into the network namespace open as `fd`."""
    # os.setns exists only from Python 3.12; libc's is the same system call.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns into a network namespace failed: {os.strerror(errno)}")


def _ip(*args: str) -> str:
    """Run `ip ARGS` and return its output, or raise StackError with the command and its error."""
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        raise StackError(
            "The `ip` command (iproute2) is not installed; install it (Debian: `apt-get install "
            "iproute2`) to run the tests that need a private network namespace."
        )
    argv = [ip, *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if result.returncode != 0:
        raise StackError(
            f"`{' '.join(['ip', *args])}` exited {result.returncode} "
            f"({result.stderr.strip() or 'no message'}); private network namespaces need "
            "iproute2 and root (CAP_SYS_ADMIN)."
        )
    return result.stdout


def remove_stale(prefix: str) -> None:
    """Delete the namespaces named `PREFIX-PID-...` whose creating process has ended (a run
    killed before its cleanup); those of running processes are left alone."""
    if not NETNS_RUN_DIR.is_dir():
        return
    for entry in NETNS_RUN_DIR.iterdir():
        if not entry.name.startswith(f"{prefix}-"):
            continue
        pid = entry.name[len(prefix) + 1 :].partition("-")[0]
        if pid.isdigit() and not pid_running(int(pid)):
            _ip("netns", "delete", entry.name)


@dataclass
class NetworkNamespace:
    """A named network namespace whose only interface is `lo`, with `addresses` on it."""

    name: str
    addresses: tuple[str, ...]

    @classmethod
    def create(cls, addresses: Sequence[str], prefix: str = "devstack") -> NetworkNamespace:
        """Create a fresh namespace, bring its `lo` up with 127.0.0.1 and each of `addresses`
        (IPv4, as /32), and check that `lo` is its only interface."""
        for address in addresses:
            parsed = ipaddress.IPv4Address(address)
            if parsed.is_loopback or parsed.is_link_local:
                raise StackError(
                    f"Address {address} is loopback or link-local, which EndpointSlices refuse; "
                    "use one from a private range such as 10.251.0.2."
                )
        remove_stale(prefix)
        namespace = cls(f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}", tuple(addresses))
        _ip("netns", "add", namespace.name)
        try:
            _ip("-n", namespace.name, "link", "set", "lo", "up")
            for address in addresses:
                _ip("-n", namespace.name, "address", "add", f"{address}/32", "dev", "lo")
            namespace.check_private()
        except BaseException:
            namespace.delete()
            raise
        return namespace

    def interfaces(self) -> list[str]:
        """Names of the namespace's network interfaces."""
        links = json.loads(_ip("-n", self.name, "-json", "link", "show"))
        return [str(link["ifname"]) for link in links]

    def check_private(self) -> None:
        """Raise unless every interface is `lo` or a bridge without ports (nothing links the
        namespace to anywhere else)."""
        links = json.loads(_ip("-n", self.name, "-json", "-details", "link", "show"))
        foreign = [
            str(link["ifname"])
            for link in links
            if link["ifname"] != "lo"
            and (link.get("linkinfo", {}).get("info_kind") != "bridge" or "master" in link)
        ]
        if foreign:
            raise StackError(
                f"Network namespace {self.name} has interfaces {foreign}; it must have only `lo` "
                "and bridges without ports, so that nothing inside is reachable from outside."
            )

    def add_stub(self, name: str, address: str, routes: Sequence[str] = ()) -> None:
        """Give the namespace an interface with no way out (a bridge without ports: what it
        is given to send goes nowhere) holding `address` (/32), with `routes` (CIDRs) through
        it: a packet for them has a source address and a route, and is only ever delivered
        if the namespace's own iptables rewrite it to an address that exists inside. (This
        machine's kernel has no `dummy` interfaces.)"""
        _ip("-n", self.name, "link", "add", name, "type", "bridge")
        _ip("-n", self.name, "address", "add", f"{address}/32", "dev", name)
        _ip("-n", self.name, "link", "set", name, "up")
        for route in routes:
            _ip("-n", self.name, "route", "add", route, "dev", name)
        self.check_private()

    def set_sysctl(self, name: str, value: str) -> None:
        """Set a network sysctl (`net/...`) of this namespace only."""
        if not name.startswith("net/"):
            raise StackError(f"Sysctl {name} is not per network namespace; only net/ ones are.")
        _ip("netns", "exec", self.name, "sysctl", "-q", "-w", f"{name.replace('/', '.')}={value}")

    @contextlib.contextmanager
    def entered(self) -> Iterator[NetworkNamespace]:
        """Run the `with` block's code, and every process it starts, inside the namespace;
        the calling thread returns to its own namespace afterwards, even on an error."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_RUN_DIR / self.name, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(own)

    def delete(self) -> None:
        """Remove the namespace (its processes must be stopped first); no error if it is gone."""
        if (NETNS_RUN_DIR / self.name).exists():
            _ip("netns", "delete", self.name)

    def __enter__(self) -> NetworkNamespace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()
