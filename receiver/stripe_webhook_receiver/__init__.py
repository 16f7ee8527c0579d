"""The Stripe webhook receiver: verifies `customer.subscription.updated` events and serves
each subscriber's subscription state."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
