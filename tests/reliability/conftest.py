"""Fixtures of the reliability suite: the session's ledger of counts (saved, and rendered into
a table, when the session ends) and the operator tests' scene, reused as is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.conftest import scene, stripewebhook_crd
from tests.reliability.ledger import SOAK, Ledger
from tests.reliability.report import DOC, RESULTS_DIR, seed, write
from tests.reliability.sink import Sink

__all__ = ["ledger", "scene", "sink", "stripewebhook_crd"]


@pytest.fixture(scope="session")
def ledger() -> Iterator[Ledger]:
    """The counts of every scenario run in this session."""
    book = Ledger()
    yield book
    if not book.rows and not book.hostile:
        return
    results = RESULTS_DIR / ("soak.json" if SOAK else "bounded.json")
    if SOAK:
        seed(results, DOC)
    book.save(results)
    write(results, DOC if SOAK else RESULTS_DIR / "bounded.md")


@pytest.fixture
def sink() -> Iterator[Sink]:
    """An HTTP endpoint on 127.0.0.1 recording every delivery it gets."""
    server = Sink().start()
    yield server
    server.stop()
