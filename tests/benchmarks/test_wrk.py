"""Reading wrk's result line."""

from __future__ import annotations

import pytest
from benchmarks.wrk import WrkError, parse_wrk_output

OUTPUT = """Running 1s test @ http://127.0.0.1:8000/
  1 threads and 4 connections
Requests/sec:   1879.96
BENCH_RESULT {"duration_us": 2000000, "requests": 500, "bytes": 80000, \
"errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 2}, \
"latency_us": {"mean": 800.5, "max": 9000, "p50": 700, "p90": 1500, "p99": 4250, \
"p999": 8000}, "statuses": {"200": 497, "503": 3}, "exhausted": 0}
"""


def test_result_line_is_parsed() -> None:
    result = parse_wrk_output(OUTPUT)
    assert result.requests == 500
    assert result.seconds == 2.0
    assert result.p50_ms == 0.7
    assert result.p99_ms == 4.25
    assert result.statuses == {200: 497, 503: 3}
    assert result.errors == 3
    assert result.rate == 248.5


def test_missing_result_line_is_an_error() -> None:
    with pytest.raises(WrkError, match="no result line"):
        parse_wrk_output("Running 1s test @ http://127.0.0.1:8000/\n")
