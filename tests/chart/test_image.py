"""The Dockerfile passes hadolint, runs as the chart's user, and installs the locked versions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from devstack.image.images import BASE_IMAGE
from devstack.processes import REPO_ROOT
from tests.chart.rendering import CHART_DIR

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_user_is_the_charts_run_as_user() -> None:
    (user,) = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for part in ("operator", "receiver"):
        context = values[part]["podSecurityContext"]
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user


def test_image_installs_the_runtime_lock_at_dev_lock_versions() -> None:
    runtime = _pins(REPO_ROOT / "requirements" / "runtime.lock")
    dev = _pins(REPO_ROOT / "requirements" / "dev.lock")
    assert runtime, "requirements/runtime.lock pins nothing"
    assert {name: dev.get(name) for name in runtime} == runtime
    assert "requirements/runtime.lock" in DOCKERFILE.read_text()


def test_image_base_defaults_to_the_pinned_official_python_311_slim() -> None:
    text = DOCKERFILE.read_text()
    (default,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", default), default
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases
    assert set(bases) == {"${BASE_IMAGE}"}


def test_local_base_has_a_local_name_never_the_official_one() -> None:
    # The base made here from Debian's packages must not pass for the official image.
    assert BASE_IMAGE.startswith("localhost/")
    assert not BASE_IMAGE.split("/", 1)[1].startswith(("python:", "library/python"))


def test_chart_image_values_point_at_this_image() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["image"]["repository"].endswith("/stripe-webhook-operator")
    assert values["image"]["tag"] == ""  # the chart's appVersion, i.e. the project version
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject
