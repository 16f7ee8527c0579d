"""The Secret-volume projector: the kubelet's layout, swapped atomically, following the API."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.node.projector import SecretProjector, project
from devstack.processes import wait_until

TIMESTAMPED = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$")
FOLLOW_TIMEOUT = 10.0


def timestamped_dirs(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if TIMESTAMPED.match(p.name))


def visible(target: Path) -> dict[str, bytes]:
    """What a reader of the mounted volume sees: the non-hidden names and their contents."""
    return {p.name: p.read_bytes() for p in target.iterdir() if not p.name.startswith(".")}


def test_layout_is_the_kubelets(tmp_path: Path) -> None:
    changed = project(tmp_path, {"signing-secret": b"whsec_a", "endpoint-id": b"we_1"})

    (data_dir,) = timestamped_dirs(tmp_path)
    assert changed
    assert os.readlink(tmp_path / "..data") == data_dir
    assert os.readlink(tmp_path / "signing-secret") == "..data/signing-secret"
    assert os.readlink(tmp_path / "endpoint-id") == "..data/endpoint-id"
    assert (tmp_path / data_dir / "signing-secret").read_bytes() == b"whsec_a"
    assert (tmp_path / data_dir / "signing-secret").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["..data", data_dir, "endpoint-id", "signing-secret"]
    )


def test_update_swaps_data_and_removes_old_dir_and_dropped_keys(tmp_path: Path) -> None:
    project(tmp_path, {"signing-secret": b"whsec_a", "previous-signing-secret": b"whsec_0"})
    (first,) = timestamped_dirs(tmp_path)

    project(tmp_path, {"signing-secret": b"whsec_b"})

    (second,) = timestamped_dirs(tmp_path)
    assert second != first
    assert os.readlink(tmp_path / "..data") == second
    assert visible(tmp_path) == {"signing-secret": b"whsec_b"}
    assert not (tmp_path / "previous-signing-secret").is_symlink()
    assert not (tmp_path / "..data_tmp").exists()


def test_same_data_leaves_the_projection_alone(tmp_path: Path) -> None:
    project(tmp_path, {"k": b"v"})
    before = timestamped_dirs(tmp_path)

    assert not project(tmp_path, {"k": b"v"})
    assert timestamped_dirs(tmp_path) == before


def test_missing_secret_is_an_empty_volume(tmp_path: Path) -> None:
    project(tmp_path, {"k": b"v"})

    project(tmp_path, {})

    (data_dir,) = timestamped_dirs(tmp_path)
    assert os.readlink(tmp_path / "..data") == data_dir
    assert list((tmp_path / data_dir).iterdir()) == []
    assert visible(tmp_path) == {}


def test_key_that_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be a file name"):
        project(tmp_path, {"..data": b"x"})


def read_visible(path: Path, attempts: int = 3) -> bytes:
    """Read a user-visible file, as a reader of the mounted volume would.

    One retry per attempt covers the one race the kubelet's layout has too: a lookup that
    resolved `..data` just before the swap may reach the old folder after its deletion. A
    missing `..data` or key symlink fails every attempt.
    """
    for _ in range(attempts - 1):
        try:
            return path.read_bytes()
        except FileNotFoundError:
            continue
    return path.read_bytes()


def test_readers_never_see_a_missing_or_mixed_projection(tmp_path: Path) -> None:
    versions = [{"a": b"1", "b": b"1"}, {"a": b"2", "b": b"2"}]
    project(tmp_path, versions[0])
    snapshots: list[tuple[bytes, bytes]] = []
    errors: list[OSError] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set() and len(snapshots) < 100_000:
            try:
                read_visible(tmp_path / "a")
            except OSError as exc:
                errors.append(exc)
            # Through one resolved ..data: both files come from the same projection.
            data_dir = tmp_path / os.readlink(tmp_path / "..data")
            # FileNotFoundError: that projection was replaced and deleted meanwhile.
            with contextlib.suppress(FileNotFoundError):
                snapshots.append(((data_dir / "a").read_bytes(), (data_dir / "b").read_bytes()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(300):
            project(tmp_path, versions[i % 2])
    finally:
        done.set()
        reader.join(timeout=10)
    assert errors == []
    assert snapshots
    assert all(a == b for a, b in snapshots)


@pytest.fixture
def projected(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path
) -> Iterator[tuple[SecretProjector, Path]]:
    target = tmp_path / "webhooks"
    projector = SecretProjector(
        kube_cluster.kubeconfig,
        kube_namespace,
        "receiver-webhooks",
        target,
    ).start()
    try:
        yield projector, target
    finally:
        projector.stop()


def wait_for(target: Path, expected: dict[str, bytes]) -> None:
    wait_until(
        lambda: visible(target) == expected,
        timeout=FOLLOW_TIMEOUT,
        what=f"projection of {sorted(expected)}",
    )


@pytest.mark.integration
def test_projection_follows_the_secret_in_the_api_server(
    projected: tuple[SecretProjector, Path], kube_namespace: str, kubectl: Kubectl
) -> None:
    projector, target = projected
    assert visible(target) == {}
    assert (target / "..data").is_symlink()

    kubectl(
        "-n", kube_namespace, "create", "secret", "generic", "receiver-webhooks",
        "--from-literal=billing.app.json={\"v\": 1}", "--from-literal=other.json=x",
    )  # fmt: skip
    wait_for(target, {"billing.app.json": b'{"v": 1}', "other.json": b"x"})

    kubectl(
        "-n", kube_namespace, "patch", "secret", "receiver-webhooks", "--type=json",
        "-p", '[{"op": "replace", "path": "/data/billing.app.json", "value": "eyJ2IjogMn0="},'
        ' {"op": "remove", "path": "/data/other.json"}]',
    )  # fmt: skip
    wait_for(target, {"billing.app.json": b'{"v": 2}'})
    assert len(timestamped_dirs(target)) == 1

    kubectl("-n", kube_namespace, "delete", "secret", "receiver-webhooks")
    wait_for(target, {})
    assert projector.process is not None
    assert projector.process.alive()
