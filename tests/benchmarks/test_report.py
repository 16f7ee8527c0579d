"""Tables, spreads and the docs section writer."""

from __future__ import annotations

from pathlib import Path

from benchmarks.measurements import LoadResult, Spread, percentile
from benchmarks.report import markdown_table, replace_section, spread_text


def test_spread_shows_median_with_range() -> None:
    assert spread_text(Spread.of([3.0, 1.0, 2.0])) == "2 (1\u20133)"
    assert spread_text(Spread.of([2.5]), 1, " ms") == "2.5 ms"
    assert spread_text(Spread.of([])) == "\u2013"


def test_markdown_table_lines_up_columns() -> None:
    table = markdown_table(["name", "req/s"], [["bare", "6,200"], ["ours", "900"]])
    lines = table.splitlines()
    assert lines[0] == "| name | req/s |"
    assert lines[1] == "|------|-------|"
    assert lines[3] == "| ours | 900   |"
    assert len({len(line) for line in lines}) == 1


def test_section_is_replaced_and_other_sections_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    replace_section("receiver", "old receiver figures", doc)
    replace_section("operator", "operator figures", doc)
    replace_section("receiver", "new receiver figures", doc)
    text = doc.read_text()
    assert "new receiver figures" in text
    assert "old receiver figures" not in text
    assert "operator figures" in text
    assert text.count("<!-- receiver:begin -->") == 1


def test_rate_counts_only_2xx_answers() -> None:
    result = LoadResult(
        requests=10, seconds=2.0, p50_ms=1.0, p99_ms=2.0, statuses={200: 6, 422: 4}, errors=1
    )
    assert result.rate == 3.0
    assert result.failed == 5


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values[:1], 0.99) == 1.0
