"""Recovery on the local stack: the books that set Stripe's own event log against the
receiver's tables, and the stage the recovery scenarios play on (tests/recovery)."""
