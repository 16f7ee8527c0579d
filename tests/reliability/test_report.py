"""The ledger and the table generator, without the stack."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.reliability.ledger import Ledger
from tests.reliability.report import read_page, render, seed, write


def test_rows_add_up_and_render_as_a_labelled_table(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.row("Receiver killed").add(trials=1, events_sent=30, crashes=2)
    ledger.row("Receiver killed").add(trials=1, events_sent=30, lost=1)
    ledger.row("Fuzz").add(events_sent=5)
    results = tmp_path / "results.json"
    ledger.save(results)
    soak, rows = Ledger.load(results)
    page = render(soak, rows, datetime(2026, 11, 27, 22, 0, tzinfo=UTC))
    assert "| Receiver killed | 2 | 60 | 1 | 0 | 2 |" in page
    assert "| Fuzz | 0 | 5 | 0 | 0 | 0 |" in page
    assert ("soak run" if soak else "bounded run") in page
    assert "tests/rotation/" in page
    output = tmp_path / "out.md"
    write(results, output)
    assert output.read_text().startswith("# Reliability")


def test_saving_again_replaces_only_the_rows_that_ran(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    first = Ledger()
    first.row("A").add(trials=3)
    first.row("B").add(trials=3)
    first.save(results)
    second = Ledger()
    second.row("B").add(trials=1)
    second.save(results)
    _, rows = Ledger.load(results)
    assert [(row.scenario, row.trials) for row in rows] == [("A", 3), ("B", 1)]


def test_rows_of_an_earlier_run_are_dated_apart(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    first = Ledger()
    for name in "ABC":
        first.row(name).add(trials=3)
    first.save(results, datetime(2026, 11, 27, 23, 14, tzinfo=UTC))
    second = Ledger()
    second.row("B").add(trials=1)
    second.save(results, datetime(2026, 11, 28, 1, 5, tzinfo=UTC))
    soak, rows = Ledger.load(results)
    page = render(soak, rows, datetime(2026, 11, 28, 1, 6, tzinfo=UTC))
    assert ", 2026-11-27 23:14 UTC; re-run alone 2026-11-28 01:05 UTC: B." in page


def test_hostile_rows_render_in_a_table_of_their_own(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    ledger = Ledger()
    ledger.row("Receiver killed").add(trials=1, events_sent=30)
    fuzz = ledger.hostile_row("Hostile requests")
    fuzz.cases += 12_000
    slow = ledger.hostile_row("Slow bodies")
    slow.cases, slow.unavailable = 1000, 3
    slow.honest_sent, slow.honest_lost, slow.honest_p99_ms = 400, 0, 12.345
    slow.peak_mib, slow.cap_mib = 101.6, 256
    ledger.save(results, datetime(2026, 11, 28, 1, 5, tzinfo=UTC))
    second = Ledger()
    second.hostile_row("Slow bodies").cases = 5
    second.save(results, datetime(2026, 11, 28, 2, 0, tzinfo=UTC))
    soak, rows, hostile = Ledger.load_all(results)
    assert [r.scenario for r in hostile] == ["Hostile requests", "Slow bodies"]
    page = render(soak, rows, datetime(2026, 11, 28, 2, 1, tzinfo=UTC), hostile)
    assert "## Hostile traffic" in page
    assert "| Hostile requests | 12,000 | 0 | 0 | 0 | 0 | 0 |  |  |  |  |" in page
    assert "| Slow bodies | 5 | 0 | 0 | 0 | 0 | 0 |  |  |  |  |" in page
    assert "re-run alone 2026-11-28 02:00 UTC: Slow bodies." in page
    first_only = render(soak, [], datetime(2026, 11, 28, 2, 1, tzinfo=UTC), [slow])
    assert "| Slow bodies | 1,000 | 0 | 3 | 0 | 0 | 0 | 400 | 0 | 12.3 | 102 / 256 |" in first_only
    assert "## Hostile traffic" not in render(soak, rows, datetime(2026, 11, 28, tzinfo=UTC))


def test_the_committed_page_reads_back_and_seeds_a_later_run(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    first = Ledger()
    first.row("Operator SIGKILL at random points of create, update, delete").add(trials=6)
    first.row("Receiver killed").add(trials=3, events_sent=360, crashes=6)
    slow = first.hostile_row("Slow bodies")
    slow.cases, slow.honest_sent, slow.honest_lost, slow.honest_p99_ms = 3000, 621, 0, 128.6
    slow.peak_mib, slow.cap_mib = 54, 256
    first.save(results, datetime(2026, 11, 27, 23, 14, tzinfo=UTC))
    again = Ledger()
    again.row("Receiver killed").add(trials=1)
    again.save(results, datetime(2026, 11, 28, 1, 5, tzinfo=UTC))
    soak, rows, hostile = Ledger.load_all(results)
    page = render(soak, rows, datetime(2026, 11, 28, 2, 0, tzinfo=UTC), hostile)
    assert read_page(page) == (soak, rows, hostile)
    committed = tmp_path / "reliability.md"
    committed.write_text(page)
    fresh = tmp_path / "fresh.json"
    seed(fresh, committed)
    later = Ledger()
    later.row("Node: kubelet restarted").add(trials=1, events_sent=40, crashes=1)
    later.save(fresh, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    _, merged, merged_hostile = Ledger.load_all(fresh)
    assert [r.scenario for r in merged] == [*(r.scenario for r in rows), "Node: kubelet restarted"]
    assert merged[:2] == rows
    assert merged_hostile == hostile
