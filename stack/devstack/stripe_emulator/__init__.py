"""A stateful Stripe emulator for the local stack: Stripe's own HTTP API for webhook
endpoints, products, prices, customers, subscriptions and events, with signed webhook
deliveries and retries; fault injection, delivery attempts and counters under `/_emulator/`.

Run it with `python -m devstack.stripe_emulator --port P`, or from Python with
`devstack.stripe_emulator.launcher.EmulatorProcess`.
"""
