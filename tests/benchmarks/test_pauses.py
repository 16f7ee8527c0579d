"""The pause log: pauses over the threshold are written by kind and summed back by kind."""

from __future__ import annotations

import io
from pathlib import Path

from benchmarks.pauses import PAUSE_MS, Recorder, summary


def test_only_pauses_over_the_threshold_are_logged_and_summed_by_kind(tmp_path: Path) -> None:
    out = io.StringIO()
    recorder = Recorder(out)
    recorder.note("gc2", PAUSE_MS / 1000 * 4)
    recorder.note("gc2", PAUSE_MS / 1000 * 2)
    recorder.note("gc0", PAUSE_MS / 1000 / 10)
    recorder.note("commit", PAUSE_MS / 1000 * 3)
    log = tmp_path / "pauses.log"
    log.write_text(out.getvalue())
    found = summary(log)
    assert set(found) == {"gc2", "commit"}
    assert found["gc2"].count == 2
    assert found["gc2"].total_ms == PAUSE_MS * 6
    assert found["gc2"].max_ms == PAUSE_MS * 4
    assert found["commit"].count == 1


def test_a_timed_call_returns_its_result_and_logs_a_slow_one() -> None:
    out = io.StringIO()
    recorder = Recorder(out)
    assert recorder.timed(lambda value: value * 2)(21) == 42
    assert out.getvalue() == ""


def test_a_missing_log_has_no_pauses(tmp_path: Path) -> None:
    assert summary(tmp_path / "absent.log") == {}
