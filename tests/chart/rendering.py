"""Running the real `helm` binary on the chart, and reading what it renders."""

from __future__ import annotations

import copy
import functools
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from devstack.processes import REPO_ROOT, tool

CHART_DIR = REPO_ROOT / "charts" / "stripe-webhook-operator"
VALUES_DIR = Path(__file__).parent / "values"
VALUES_FILES = sorted(path.stem for path in VALUES_DIR.glob("*.yaml"))
RELEASE = "swh"
NAMESPACE = "stripe-system"

Manifest = dict[str, Any]


def helm(
    *args: str, check: bool = True, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm with `args`; raise with its output when `check` and it fails."""
    argv = [str(tool("helm")), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def values_args(values: str | None = None, sets: Sequence[str] = ()) -> list[str]:
    """Command-line arguments selecting a values file of tests/chart/values and `--set`s."""
    args = [] if values is None else ["--values", str(VALUES_DIR / f"{values}.yaml")]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def template(
    values: str | None = None,
    sets: Sequence[str] = (),
    *,
    chart: Path = CHART_DIR,
    namespace: str = NAMESPACE,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` the chart (with its test hooks) and return the finished process."""
    args = ["template", RELEASE, str(chart), "--namespace", namespace]
    return helm(*args, *values_args(values, sets), check=check)


def render(
    values: str | None = None,
    sets: Sequence[str] = (),
    *,
    chart: Path = CHART_DIR,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """Render the chart and return its objects, hooks included (a fresh copy each call)."""
    return copy.deepcopy(_rendered(values, tuple(sets), chart, namespace))


@functools.lru_cache(maxsize=64)
def _rendered(
    values: str | None, sets: tuple[str, ...], chart: Path, namespace: str
) -> list[Manifest]:
    # The chart does not change while the suite runs: each combination is rendered once.
    text = template(values, sets, chart=chart, namespace=namespace).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def notes(values: str | None = None, sets: Sequence[str] = ()) -> str:
    """Return the NOTES.txt Helm prints after installing with these values."""
    args = ["install", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--dry-run=client"]
    output = helm(*args, *values_args(values, sets)).stdout
    return output.split("NOTES:", 1)[1]


def render_error(values: str | None = None, sets: Sequence[str] = ()) -> str:
    """Render the chart, expecting a failure; return helm's error output."""
    result = template(values, sets, check=False)
    assert result.returncode != 0, f"rendering succeeded:\n{result.stdout}"
    return result.stderr


def find(manifests: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    """Return the one object of `kind` whose name ends with `name_suffix`."""
    found = [
        m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects named *{name_suffix}"
    return found[0]


def kinds(manifests: list[Manifest]) -> set[str]:
    return {m["kind"] for m in manifests}


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """Yield (object name, pod spec) for every Deployment and bare Pod."""
    for manifest in manifests:
        if manifest["kind"] == "Deployment":
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "Pod":
            yield manifest["metadata"]["name"], manifest["spec"]


def container(manifest: Manifest, name: str) -> Manifest:
    """Return the container `name` of a Deployment."""
    containers = manifest["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)
