"""The images the local node runs, each built here from what this machine can reach.

- the base: a Debian bookworm root filesystem made by `mmdebstrap` from Debian's packages
  (Python 3.11, venv, CA certificates, `groupadd`), named `localhost/devstack/python-base`:
  a local name, never the name of the official Python image it stands in for;
- the project's image, from its own Dockerfile (`buildah bud`, `--build-arg BASE_IMAGE=` the
  base above), `localhost/stripe-webhook-operator:dev`;
- three images of one static binary each: the sandbox (`pause`, compiled from pause.c), CoreDNS
  and the local-path volume provisioner (both built from their Go modules by `make tools`).

Each is rebuilt only when its inputs change (image/store.py keeps the keys).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.image.store import CACHE, Archive, digest_files, release_mounts, run
from devstack.processes import REPO_ROOT, StackError, tool

BASE_IMAGE = "localhost/devstack/python-base:3.11-bookworm"
PROJECT_IMAGE = "localhost/stripe-webhook-operator:dev"
PAUSE_IMAGE = "localhost/devstack/pause:1"
COREDNS_IMAGE = "localhost/devstack/coredns:v1.15.0"
LOCAL_PATH_IMAGE = "localhost/devstack/local-path-provisioner:v0.0.30"
# Debian's names for what the Dockerfile's base must give: `python` (python-is-python3),
# `python -m venv` with pip (python3-venv), TLS roots, and `groupadd`/`useradd` (passwd).
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
BASE_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Documentation, manual pages and translations: nothing in a container reads them.
BASE_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
PAUSE_SOURCE = Path(__file__).with_name("pause.c")
# The Dockerfile's build context, as .dockerignore lets it through.
CONTEXT_FILES = ("pyproject.toml", "README.md", "requirements/runtime.lock", ".dockerignore")
CONTEXT_PACKAGES = ("operator/stripe_webhook_operator", "receiver/stripe_webhook_receiver")
# The unprivileged user of the single-binary images (the usual `nobody`-like id).
SCRATCH_USER = "65532:65532"


@dataclass(frozen=True)
class Built:
    """One image after `build`: its archive, whether it was built now, and how long it took."""

    archive: Archive
    rebuilt: bool
    seconds: float


def _timed(archive: Archive, build: Callable[[Path], None], log: Path) -> Built:
    if archive.current():
        return Built(archive, rebuilt=False, seconds=0.0)
    began = time.monotonic()
    build(log)
    archive.export(log)
    return Built(archive, rebuilt=True, seconds=time.monotonic() - began)


def _work_dir() -> Path:
    path = CACHE / "build"
    path.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=path))


# --- the base --------------------------------------------------------------------------------


def base_key() -> str:
    return digest_files((), BASE_SUITE, DEBIAN_MIRROR, *BASE_PACKAGES, *BASE_EXCLUDES)


def _build_base(log: Path) -> None:
    work = _work_dir()
    try:
        rootfs = work / "rootfs.tar"
        dpkg_options = [f"--dpkgopt=path-exclude={pattern}" for pattern in BASE_EXCLUDES]
        run(
            [
                "mmdebstrap",
                "--quiet",
                "--mode=root",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                *dpkg_options,
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--format=tar",
                BASE_SUITE,
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            log=log,
        )
        _commit_rootfs(rootfs, BASE_IMAGE, ["--cmd=python3", "--env=LANG=C.UTF-8"], log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _commit_rootfs(rootfs: Path, name: str, config: Sequence[str], log: Path) -> None:
    """Make image `name` whose only layer is the tar `rootfs`."""
    container = run(["buildah", "from", "--pull=never", "scratch"], log=log).strip()
    try:
        mount = Path(run(["buildah", "mount", container], log=log).strip())
        run(
            ["tar", "--extract", "--same-owner", f"--file={rootfs}", f"--directory={mount}"],
            log=log,
        )
        run(["buildah", "umount", container], log=log)
        run(["buildah", "config", *config, container], log=log)
        run(["buildah", "commit", "--quiet", "--rm", container, name], log=log)
    except BaseException:
        run(["buildah", "rm", container], log=log)
        raise


# --- the project's image ---------------------------------------------------------------------


def context_files() -> list[Path]:
    """The files of the Dockerfile's build context (what .dockerignore lets through)."""
    files = [REPO_ROOT / "Dockerfile", *(REPO_ROOT / name for name in CONTEXT_FILES)]
    for package in CONTEXT_PACKAGES:
        files += [
            path
            for path in (REPO_ROOT / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        ]
    return files


def project_key() -> str:
    return digest_files(context_files(), base_key())


def _build_project(log: Path) -> None:
    run(
        [
            "buildah",
            "bud",
            "--pull=never",
            "--layers",
            "--isolation=chroot",
            "--network=host",
            # pip's TLS goes through this machine's proxy, whose CA is in its bundle: lent to
            # the RUN steps read-only, never copied into a layer.
            "--volume=/etc/ssl/certs:/etc/ssl/certs:ro",
            f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
            f"--tag={PROJECT_IMAGE}",
            "--file=Dockerfile",
            ".",
        ],
        log=log,
        cwd=REPO_ROOT,
    )


# --- images of one static binary -------------------------------------------------------------


def _build_scratch(name: str, binary: Path, entrypoint: str, log: Path) -> None:
    """Image `name` holding only `binary` at `/<entrypoint>`, run as an unprivileged user."""
    container = run(["buildah", "from", "--pull=never", "scratch"], log=log).strip()
    try:
        run(["buildah", "copy", "--chmod=0755", container, str(binary), f"/{entrypoint}"], log=log)
        run(
            [
                "buildah",
                "config",
                f'--entrypoint=["/{entrypoint}"]',
                f"--user={SCRATCH_USER}",
                container,
            ],
            log=log,
        )
        run(["buildah", "commit", "--quiet", "--rm", container, name], log=log)
    except BaseException:
        run(["buildah", "rm", container], log=log)
        raise


def _build_pause(log: Path) -> None:
    work = _work_dir()
    try:
        binary = work / "pause"
        run(["gcc", "-static", "-O2", "-s", "-o", str(binary), str(PAUSE_SOURCE)], log=log)
        _build_scratch(PAUSE_IMAGE, binary, "pause", log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _static_tool(name: str) -> Callable[[Path], None]:
    image = {"coredns": COREDNS_IMAGE, "local-path-provisioner": LOCAL_PATH_IMAGE}[name]

    def build(log: Path) -> None:
        _build_scratch(image, tool(name), name, log)

    return build


# --- all of them -----------------------------------------------------------------------------


def _binary_key(name: str) -> Callable[[], str]:
    return lambda: digest_files([tool(name)])


def build(log: Path) -> list[Built]:
    """Build every image whose inputs changed (the base first: the project's image needs it)."""
    steps: list[tuple[str, Callable[[], str], Callable[[Path], None]]] = [
        (BASE_IMAGE, base_key, _build_base),
        (PROJECT_IMAGE, project_key, _build_project),
        (PAUSE_IMAGE, lambda: digest_files([PAUSE_SOURCE]), _build_pause),
        (COREDNS_IMAGE, _binary_key("coredns"), _static_tool("coredns")),
        (
            LOCAL_PATH_IMAGE,
            _binary_key("local-path-provisioner"),
            _static_tool("local-path-provisioner"),
        ),
    ]
    built = []
    try:
        for name, key, step in steps:
            try:
                built.append(_timed(Archive.of(name, key()), step, log))
            except StackError as exc:
                raise StackError(f"Building image {name} failed; the log is {log}.\n{exc}") from exc
    finally:
        release_mounts()
    return built


def node_archives(log: Path) -> list[Archive]:
    """Every image the node imports into containerd, built first where needed."""
    return [item.archive for item in build(log)]
