"""Suite-wide fixtures: the local stack (or the real services named by E2E_KUBECONFIG and
STRIPE_TEST_API_KEY). Each component's fixtures live beside its launcher in stack/devstack."""

pytest_plugins = [
    "devstack.cluster.fixtures",
    "devstack.services.fixtures",
    "devstack.stripe_emulator.fixtures",
    # After the emulator's: it builds on them.
    "devstack.node.fixtures",
]
