"""The kubelet's machine-wide sysctls are recorded before the first node and written back by
the last one to leave, even when another launcher died without leaving."""

from __future__ import annotations

import json
from pathlib import Path

from devstack.node.sysctls import KUBELET_SYSCTLS, KernelSettings, read

MACHINE = {
    "vm/overcommit_memory": "0",
    "vm/panic_on_oom": "0",
    "kernel/panic": "1",
    "kernel/panic_on_oops": "0",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
KUBELET = {
    **MACHINE,
    "vm/overcommit_memory": "1",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
}
# A PID no process has (beyond the kernel's pid_max).
DEAD_PID = 2**30


def _fake_proc(root: Path, values: dict[str, str]) -> None:
    for name, value in values.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(value + "\n")


def _kubelet_starts(root: Path) -> None:
    _fake_proc(root, KUBELET)


def test_the_list_is_the_kubelets() -> None:
    assert set(KUBELET_SYSCTLS) == set(MACHINE)


def test_one_node_puts_back_what_it_found(tmp_path: Path) -> None:
    root, registry = tmp_path / "proc", tmp_path / "run" / "settings.json"
    _fake_proc(root, MACHINE)
    node = KernelSettings(registry=registry, root=root)
    node.join()
    _kubelet_starts(root)
    assert node.leave() == MACHINE
    assert read(root=root) == MACHINE
    assert not registry.exists()


def test_the_last_of_two_nodes_puts_them_back(tmp_path: Path) -> None:
    root, registry = tmp_path / "proc", tmp_path / "run" / "settings.json"
    _fake_proc(root, MACHINE)
    # Two nodes of one process (as a test session runs a second beside its own).
    first = KernelSettings(registry=registry, root=root)
    first.join()
    _kubelet_starts(root)
    second = KernelSettings(registry=registry, root=root)
    second.join()
    # The second found the kubelet's values, but the record keeps the machine's own.
    assert json.loads(registry.read_text())["values"] == MACHINE
    assert first.leave() == {}
    assert read(root=root) == KUBELET  # the second node's kubelet still needs them
    assert second.leave() == MACHINE
    assert read(root=root) == MACHINE


def test_a_launcher_that_died_without_leaving_is_dropped_and_its_record_restored(
    tmp_path: Path,
) -> None:
    root, registry = tmp_path / "proc", tmp_path / "run" / "settings.json"
    _fake_proc(root, MACHINE)
    KernelSettings(pid=DEAD_PID, registry=registry, root=root).join()
    _kubelet_starts(root)  # ... and the run was killed here
    later = KernelSettings(registry=registry, root=root)
    later.join()
    # The dead run's record was written back first, so the new record is the machine's own.
    assert json.loads(registry.read_text()) == {"values": MACHINE, "users": [later.user]}
    _kubelet_starts(root)
    assert later.leave() == MACHINE
    assert read(root=root) == MACHINE
