"""A stand-in for the kubelet's Secret volume: one Secret mirrored into a directory.

The layout is the kubelet's atomic writer's, so that code reading a mounted Secret runs
unchanged on the local stack:

    target/..2026_11_27_20_49_12.123456789/signing-secret   the files, one per key
    target/..data -> ..2026_11_27_20_49_12.123456789         swapped with one rename
    target/signing-secret -> ..data/signing-secret           one symlink per key

A reader that opens `target/<key>` sees either the old or the new set of files, never a mix.
A missing Secret projects as an empty set, as for a volume marked `optional: true`.

Run as a watch:
`python -m devstack.node.projector --kubeconfig K --namespace N --secret S --target-dir D`.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack.processes import REPO_ROOT, ManagedProcess, StackError, wait_until

DATA_LINK = "..data"
DATA_TMP_LINK = "..data_tmp"
FILE_MODE = 0o644  # the default mode of a Secret volume (`defaultMode: 420`)
SYNCED = "projector: synced"  # logged after the first projection; start() waits for it
START_TIMEOUT = 30.0
RETRY_DELAY = 0.5
WATCH_SECONDS = 60

log = logging.getLogger("devstack.node.projector")


def project(target_dir: Path, data: Mapping[str, bytes]) -> bool:
    """Make `target_dir` show exactly `data`, one file per key; return whether anything changed.

    The new files are complete before the single rename that makes them visible, and the old
    ones are deleted only after it, as the kubelet does.
    """
    for key in data:
        _check_key(key)
    target_dir.mkdir(parents=True, exist_ok=True)
    old_dir = _current_dir(target_dir)
    if old_dir is not None and _read_dir(old_dir) == dict(data):
        return False
    new_dir = _new_timestamped_dir(target_dir)
    for key, value in data.items():
        path = new_dir / key
        path.write_bytes(value)
        path.chmod(FILE_MODE)
    tmp_link = target_dir / DATA_TMP_LINK
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(new_dir.name)
    tmp_link.rename(target_dir / DATA_LINK)
    for key in data:
        link = target_dir / key
        if not link.is_symlink():
            link.symlink_to(f"{DATA_LINK}/{key}")
    for entry in target_dir.iterdir():
        if not entry.name.startswith("..") and entry.name not in data:
            entry.unlink()
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


def _check_key(key: str) -> None:
    if not key or "/" in key or key.startswith(".."):
        raise ValueError(
            f"Secret key '{key}' cannot be a file name in a volume; "
            "use a non-empty key without `/` that does not start with `..`."
        )


def _current_dir(target_dir: Path) -> Path | None:
    link = target_dir / DATA_LINK
    if not link.is_symlink():
        return None
    return target_dir / os.readlink(link)


def _read_dir(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def _new_timestamped_dir(target_dir: Path) -> Path:
    # The kubelet names it after the UTC time with a unique suffix; nanoseconds serve as one,
    # and the bounded retry covers two projections within one clock tick.
    for _ in range(100):
        now_ns = time.time_ns()
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(now_ns // 1_000_000_000))
        path = target_dir / f"..{stamp}.{now_ns % 1_000_000_000:09d}"
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            continue
        return path
    raise StackError(f"could not create a new timestamped folder in {target_dir}")


def secret_data(secret: object | None) -> dict[str, bytes]:
    """Return the decoded `data` of a Secret from the kubernetes client, or {} for none."""
    encoded: Mapping[str, str] | None = getattr(secret, "data", None)
    return {key: base64.b64decode(value) for key, value in (encoded or {}).items()}


def watch(kubeconfig: Path, namespace: str, secret_name: str, target_dir: Path) -> None:
    """Mirror the Secret into `target_dir` for as long as the process runs."""
    from kubernetes import client, config
    from kubernetes import watch as kube_watch

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    selector = f"metadata.name={secret_name}"
    synced = False
    while True:
        try:
            listing = api.list_namespaced_secret(namespace, field_selector=selector)
            project(target_dir, secret_data(listing.items[0] if listing.items else None))
            if not synced:
                log.info(SYNCED)
                synced = True
            stream = kube_watch.Watch().stream(
                api.list_namespaced_secret,
                namespace,
                field_selector=selector,
                resource_version=listing.metadata and listing.metadata.resource_version,
                timeout_seconds=WATCH_SECONDS,
            )
            for event in stream:
                if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                    break  # an ERROR (such as 410 Gone) or BOOKMARK: list again
                deleted = event["type"] == "DELETED"
                if project(target_dir, {} if deleted else secret_data(event["object"])):
                    log.info("projected Secret %s/%s", namespace, secret_name)
        except Exception as exc:  # the API server may restart; list again after a pause
            log.warning("watch interrupted (%s); listing again", type(exc).__name__)
            time.sleep(RETRY_DELAY)


class SecretProjector:
    """Runs the watch as a child process (it may outlive this one); stopped by PID."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        secret_name: str,
        target_dir: Path,
        log_path: Path | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.secret_name = secret_name
        self.target_dir = Path(target_dir)
        self.log_path = log_path or self.target_dir.parent / f"{self.target_dir.name}.projector.log"
        self.process: ManagedProcess | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError("the projector was never started")
        return self.process.pid

    def start(self) -> SecretProjector:
        """Start the watch; return once the directory shows the Secret as it is now."""
        argv = [
            sys.executable,
            "-m",
            "devstack.node.projector",
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            self.namespace,
            "--secret",
            self.secret_name,
            "--target-dir",
            str(self.target_dir),
        ]
        env = dict(os.environ)
        stack_dir = str(REPO_ROOT / "stack")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [stack_dir, env.get("PYTHONPATH")]))
        self.log_path.unlink(missing_ok=True)  # readiness is read from this log
        self.process = ManagedProcess("projector", argv, self.log_path, env=env)
        self.process.start()
        process = self.process
        try:
            wait_until(
                lambda: not process.alive() or SYNCED in process.log_tail(),
                timeout=START_TIMEOUT,
                what=f"projector of Secret {self.namespace}/{self.secret_name}",
            )
            process.check_alive()  # an early exit ends the wait; say why, with its log
        except BaseException:
            self.stop()  # a process that never got ready must not linger
            raise
        return self

    def stop(self) -> None:
        """Stop the watch by PID; the directory stays as last projected."""
        if self.process is not None:
            self.process.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line of the watch process."""
    parser = argparse.ArgumentParser(prog="python -m devstack.node.projector", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--target-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    watch(args.kubeconfig, args.namespace, args.secret, args.target_dir)


if __name__ == "__main__":
    main()
