"""The receiver's CPU floor measures the steps it names and applies every event it writes;
the memory probe, loaded into a child process, samples its memory as JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.operator_bench import MEMORY_PROBE

from benchmarks import receiver_floor


def test_the_ceiling_is_bare_starlettes_time_over_its_time_plus_the_steps() -> None:
    steps = [receiver_floor.Step("a", "", [10.0, 12.0, 11.0]), receiver_floor.Step("b", "", [9.0])]
    floor = receiver_floor.Floor(steps, receiver_floor.Step("store", "", [30.0]))
    assert floor.mandatory == 20.0
    # 25,000 req/s is 40 µs per request: 40 / (40 + 20).
    assert abs(floor.ceiling(25_000.0) - 40 / 60) < 1e-9


def test_a_small_floor_run_measures_every_step() -> None:
    # measure() asserts that every event it writes is applied, by both paths.
    floor = receiver_floor.measure(deliveries=64, repeats=1)
    assert [step.name for step in floor.steps] == ["verify", "parse", "durable writes"]
    assert all(step.median > 0 for step in [*floor.steps, floor.store])
    rows = receiver_floor.table(floor)
    assert rows[3][0] == "sum"
    assert float(rows[3][2]) == round(floor.mandatory, 1)


def test_the_probe_samples_a_child_that_loads_it(tmp_path: Path) -> None:
    out = tmp_path / "probe"
    env = {
        **os.environ,
        "PYTHONPATH": str(MEMORY_PROBE),
        "BENCH_MEMORY_PROBE": str(out),
        "BENCH_MEMORY_PROBE_INTERVAL": "0.05",
    }
    child = subprocess.run(
        [sys.executable, "-c", "import os, time; time.sleep(0.5); print(os.getpid())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    samples = (tmp_path / f"probe.{child.stdout.strip()}").read_text().splitlines()
    assert len(samples) >= 2
    first = json.loads(samples[0])
    assert first["rss_kib"] > 0
    assert first["hwm_kib"] >= first["rss_kib"]
    assert {"anon_kib", "heap_used_kib", "pymalloc_blocks", "sockets"} <= first.keys()


def test_without_a_file_named_the_probe_does_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(MEMORY_PROBE)}
    env.pop("BENCH_MEMORY_PROBE", None)
    code = "import threading; print([t.name for t in threading.enumerate()])"
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert "memory-probe" not in child.stdout
