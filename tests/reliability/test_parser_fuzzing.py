"""The coverage-guided harness (tests/reliability/fuzz_parsers.py, atheris) run on each parsing
and verification target for a fixed count (`make test`) or a fixed time (`make soak`): libFuzzer
must finish without a finding, and the runs it made are counted in docs/reliability.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.processes import REPO_ROOT
from tests.reliability.ledger import SOAK, TIMEOUT, Ledger

SCENARIO = "Parsing and verification, coverage-guided (atheris)"
# `make test`: a fixed count per target; `make soak`: a fixed time per target.
LIMIT = ["-max_total_time=240"] if SOAK else ["-runs=20000"]
SEED = 16
# The targets of fuzz_parsers.py (not imported here: atheris instruments what it imports).
TARGETS = ("event", "signature", "webhook_file")
DONE = re.compile(r"Done (\d+) runs in (\d+) second")
COVERAGE = re.compile(r"cov: (\d+) ft: (\d+)")


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("target", TARGETS)
def test_parsers_survive_coverage_guided_fuzzing(
    target: str, tmp_path: Path, ledger: Ledger
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    argv = [
        sys.executable, "-m", "tests.reliability.fuzz_parsers", target, str(corpus),
        *LIMIT, f"-seed={SEED}", f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=2048",
        "-timeout=30", "-max_len=20000", "-print_final_stats=1",
    ]  # fmt: skip
    result = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT - 30, check=False
    )
    output = result.stderr + result.stdout
    done = DONE.search(output)
    row = ledger.hostile_row(SCENARIO)
    row.cases += int(done.group(1)) if done else 0
    row.failures += int(result.returncode != 0)
    findings = sorted(path.name for path in tmp_path.iterdir() if path.is_file())
    assert result.returncode == 0, f"{target}: a finding ({findings}):\n{output[-4000:]}"
    assert done, output[-2000:]
    coverage = COVERAGE.findall(output)
    print(f"{target}: {done.group(1)} runs in {done.group(2)} s, last cov/ft {coverage[-1:]}")
    assert int(done.group(1)) >= 1000
