"""The local stack: real Kubernetes control plane, Stripe emulator, stripe-mock, helm,
PostgreSQL and a Secret-volume projector, started for tests, `make dev-up` and `make demo`.

Not shipped in the wheel; importable when `stack/` is on the path (pytest does this).
"""
