"""containerd (Debian's 1.6, with runc) as the node's container runtime, all state in its workdir.

Its settings that matter on this machine: cgroupfs, not systemd (there is no systemd);
`restrict_oom_score_adj`, since the session lacks CAP_SYS_RESOURCE and runc could not lower a
container's OOM score (every sandbox failed with "can't get final child's PID from pipe: EOF");
the sandbox image is the locally built `pause`, never pulled; images come from
`ctr images import` of the archives devstack.image builds, so no registry is ever asked.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from devstack.image.images import PAUSE_IMAGE
from devstack.image.store import Archive
from devstack.node.cgroups import NodeCgroups
from devstack.node.mounts import MountNamespace
from devstack.processes import ManagedProcess, StackError, wait_until

CNI_BIN_DIR = Path("/usr/lib/cni")
# Inside the node's mount namespace (its own tmpfs on /run): where the kubelet and cAdvisor
# look for it, and short, as a Unix socket path must be (108 bytes at most). The host reaches
# it through the namespace holder's /proc/PID/root.
SOCKET = Path("/run/containerd/containerd.sock")
# Kubernetes' images live in this containerd namespace (CRI's).
K8S_NAMESPACE = "k8s.io"
READY_TIMEOUT = 30.0
IMPORT_TIMEOUT = 600.0
# Plugins that would look for storage back ends this node does not use.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


def config(workdir: Path, cni_conf_dir: Path) -> str:
    """containerd's config.toml (version 2) for the node."""
    disabled = ", ".join(f'"{name}"' for name in DISABLED_PLUGINS)
    return f"""\
version = 2
root = "{workdir / "root"}"
state = "{workdir / "state"}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{SOCKET}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf_dir}"
  max_conf_num = 1
"""


class Containerd:
    """containerd in the node's namespaces and cgroup tree."""

    def __init__(self, workdir: Path, cni_conf_dir: Path) -> None:
        self.workdir = workdir
        self.cni_conf_dir = cni_conf_dir
        self._process: ManagedProcess | None = None
        self._mounts: MountNamespace | None = None

    @property
    def socket(self) -> Path:
        """The socket as the host sees it."""
        if self._mounts is None:
            raise StackError("containerd was never started")
        return Path(f"/proc/{self._mounts.pid}/root") / SOCKET.relative_to("/")

    @property
    def endpoint(self) -> str:
        """The CRI endpoint the kubelet (inside the node's namespaces) is given."""
        return f"unix://{SOCKET}"

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise StackError("containerd was never started")
        return self._process

    def start(self, mounts: MountNamespace, cgroups: NodeCgroups) -> Containerd:
        """Start containerd and wait until it answers on its socket."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._mounts = mounts
        path = self.workdir / "config.toml"
        path.write_text(config(self.workdir, self.cni_conf_dir))
        self._process = ManagedProcess(
            "containerd",
            mounts.enter(["containerd", f"--config={path}", "--log-level=warn"]),
            self.workdir / "containerd.log",
        )
        self._launch(cgroups)
        return self

    def restart(self, cgroups: NodeCgroups) -> None:
        """Stop containerd and start it again on the same state, as `systemctl restart
        containerd` does: the shims (each in a process group of its own) and the containers
        they hold keep running, and the new containerd finds them in its state directory."""
        self.process.stop()
        self._launch(cgroups)

    def _launch(self, cgroups: NodeCgroups) -> None:
        process = self.process.start()
        # Before it starts any shim, so that every shim is born inside the tree.
        cgroups.adopt(process.pid)
        try:
            wait_until(
                lambda: self.ctr("version", timeout=5).returncode == 0,
                timeout=READY_TIMEOUT,
                what="containerd",
            )
        except StackError:
            process.check_alive()
            raise

    def ctr(
        self, *args: str, timeout: float = 60.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `ctr` against this containerd, in Kubernetes' namespace."""
        result = subprocess.run(
            ["ctr", f"--address={self.socket}", f"--namespace={K8S_NAMESPACE}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"`ctr {' '.join(args[:2])}` exited {result.returncode}: {result.stderr}"
            )
        return result

    def import_images(self, archives: Sequence[Archive]) -> None:
        """Import every docker-archive into containerd (unpacked for its snapshotter)."""
        for archive in archives:
            self.ctr("images", "import", str(archive.path), timeout=IMPORT_TIMEOUT, check=True)

    def images(self) -> set[str]:
        """Names of the images containerd holds."""
        listed = self.ctr("images", "list", "--quiet", check=True).stdout
        return set(listed.split())

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
