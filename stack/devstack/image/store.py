"""The project's own container storage and the commands that use it (buildah, skopeo).

Images live in `.cache/containers` of the repository (overlay driver), never in the machine's
`/var/lib/containers`: a build touches nothing outside the checkout, and `rm -rf .cache` undoes
it. Each built image is also exported once as a docker-archive under `.cache/images`, the form
`ctr images import` accepts, with a key file beside it naming the inputs it was built from; an
image whose inputs did not change is not built again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import REPO_ROOT, StackError

CACHE = REPO_ROOT / ".cache"
STORAGE_ROOT = CACHE / "containers"
ARCHIVES = CACHE / "images"
# Debian's packages that build and package images here; install-system-packages.sh has them.
COMMANDS = ("buildah", "skopeo", "mmdebstrap")
COMMAND_TIMEOUT = 1800.0


def storage_conf() -> Path:
    """Write (once) and return the containers-storage configuration of the project's store."""
    path = STORAGE_ROOT / "storage.conf"
    if not path.exists():
        STORAGE_ROOT.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{STORAGE_ROOT / "storage"}"\n'
            f'runroot = "{STORAGE_ROOT / "run"}"\n'
        )
    return path


def release_mounts() -> list[Path]:
    """Unmount what the overlay driver left mounted in the project's store (it bind-mounts its
    home on itself and keeps it after buildah exits), deepest first; return what was unmounted.

    Nothing runs from this store (the node imports the archives into containerd), so after a
    build nothing needs the mounts, and a checkout without them can be deleted with `rm -rf`.
    """
    root = str(STORAGE_ROOT.resolve())
    mounted = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            mounted.append(Path(point))
    for point in sorted(mounted, key=lambda path: len(path.parts), reverse=True):
        subprocess.run(["umount", str(point)], check=False, capture_output=True, timeout=60)
    return mounted


def command(name: str) -> str:
    """The path of an image tool, or StackError saying how to install it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise StackError(
            f"`{name}` is not installed; run `make system-packages` (Debian: "
            f"`apt-get install {' '.join(COMMANDS)}`)."
        )
    return found


def run(argv: Sequence[str], *, log: Path, cwd: Path | None = None) -> str:
    """Run an image command with the project's store, its output appended to `log`; return
    its standard output, or raise StackError with the command and the log's last lines."""
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(storage_conf()))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        sink.write(f"$ {' '.join(argv)}\n".encode())
        sink.flush()
        result = subprocess.run(
            [command(argv[0]), *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=sink,
            env=env,
            cwd=cwd,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        sink.write(result.stdout)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise StackError(f"`{' '.join(argv[:3])} ...` exited {result.returncode}:\n{tail}")
    return result.stdout.decode()


def digest_files(paths: Iterable[Path], *extra: str) -> str:
    """A key for a build: the SHA-256 of the given files' paths and contents plus `extra`."""
    sha = hashlib.sha256()
    for value in extra:
        sha.update(value.encode() + b"\0")
    for path in sorted(paths):
        sha.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()


@dataclass(frozen=True)
class Archive:
    """A built image, exported as a docker-archive that containerd imports."""

    name: str
    path: Path
    key: str

    @classmethod
    def of(cls, name: str, key: str) -> Archive:
        file = name.replace("localhost/", "").replace("/", "_").replace(":", "_")
        return cls(name, ARCHIVES / f"{file}.tar", key)

    @property
    def key_file(self) -> Path:
        return self.path.with_suffix(".key")

    def current(self) -> bool:
        """Whether this archive exists and was built from the same inputs."""
        return (
            self.path.exists()
            and self.key_file.exists()
            and self.key_file.read_text().strip() == self.key
        )

    def export(self, log: Path) -> Archive:
        """Copy the image from the store into the archive and record its key."""
        ARCHIVES.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        run(
            [
                "skopeo",
                "copy",
                "--quiet",
                f"containers-storage:{self.name}",
                f"docker-archive:{self.path}:{self.name}",
            ],
            log=log,
        )
        self.key_file.write_text(self.key + "\n")
        return self

    def size_bytes(self) -> int:
        return self.path.stat().st_size
