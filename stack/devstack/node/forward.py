"""TCP forwarding from the machine's 127.0.0.1 into the node's network namespace.

The node's cluster lives in a namespace nothing can reach (devstack.node.network). A person's
shell and the test process need a few of its servers all the same: the API server (so
`kubectl`, `helm`, `kubectl logs` and `exec` work from the host), the Stripe emulator, and
Services they are given. `python -m devstack.node.forward --netns NAME --map PORT=HOST:PORT ...`
binds each listener on 127.0.0.1 first, in the machine's namespace, then moves itself into the
node's namespace: every connection it opens from then on starts there. It is a plain byte
pipe (TLS and upgrades such as exec's pass through untouched), one process for all its maps,
stopped by its PID. `--ports-file` receives the ports bound (a map's port may be 0: any free).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.node.netns import NETNS_RUN_DIR, NetworkNamespace, _setns
from devstack.processes import ManagedProcess, StackError, stack_env, wait_until

CHUNK = 65536
READY_TIMEOUT = 15.0


@dataclass(frozen=True)
class Mapping:
    """Listen on 127.0.0.1:`port`; connect to `host`:`target_port` inside the namespace."""

    port: int
    host: str
    target_port: int

    @classmethod
    def parse(cls, text: str) -> Mapping:
        listen, _, target = text.partition("=")
        host, _, port = target.rpartition(":")
        if not (listen.isdigit() and host and port.isdigit()):
            raise argparse.ArgumentTypeError(f"`{text}` must look like 8443=10.250.0.1:6443")
        return cls(int(listen), host, int(port))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _serve_one(
    target: Mapping, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.host, target.target_port
        )
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
    )
    for writer in (upstream_writer, client_writer):
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _serve(listeners: Sequence[tuple[socket.socket, Mapping]]) -> None:
    servers = []
    for sock, target in listeners:

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Mapping = target
        ) -> None:
            await _serve_one(target, reader, writer)

        servers.append(await asyncio.start_server(handle, sock=sock))
    await asyncio.gather(*(server.serve_forever() for server in servers))


class Forwarder:
    """A running `python -m devstack.node.forward`: `port(i)` is where map `i` listens."""

    def __init__(
        self, workdir: Path, netns: NetworkNamespace, targets: Sequence[tuple[str, int]]
    ) -> None:
        self.workdir = workdir
        self.netns = netns
        self.targets = tuple(targets)
        self.ports: list[int] = []
        self._process: ManagedProcess | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise StackError("the forwarder was never started")
        return self._process.pid

    def start(self) -> Forwarder:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports_file = self.workdir / f"forward-{os.getpid()}-{id(self)}.json"
        ports_file.unlink(missing_ok=True)
        maps = [f"--map=0={host}:{port}" for host, port in self.targets]
        self._process = ManagedProcess(
            "forward",
            [
                sys.executable,
                "-m",
                "devstack.node.forward",
                f"--netns={self.netns.name}",
                f"--ports-file={ports_file}",
                *maps,
            ],
            self.workdir / "forward.log",
            env=stack_env(),
        ).start()
        try:
            wait_until(ports_file.exists, timeout=READY_TIMEOUT, what="the port forwarder")
        except StackError:
            self._process.check_alive()
            raise
        self.ports = [int(port) for port in json.loads(ports_file.read_text())]
        return self

    def url(self, index: int = 0, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[index]}"

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.node.forward")
    parser.add_argument("--netns", required=True, help="name of the network namespace")
    parser.add_argument("--map", type=Mapping.parse, action="append", required=True)
    parser.add_argument("--ports-file", type=Path, required=True)
    args = parser.parse_args(argv)
    listeners = []
    for target in args.map:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", target.port))
        sock.listen(128)
        sock.setblocking(False)
        listeners.append((sock, target))
    fd = os.open(NETNS_RUN_DIR / args.netns, os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)
    ports = [sock.getsockname()[1] for sock, _ in listeners]
    partial = args.ports_file.with_suffix(".partial")
    partial.write_text(json.dumps(ports))
    partial.rename(args.ports_file)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(listeners))
    return 0


if __name__ == "__main__":
    sys.exit(main())
