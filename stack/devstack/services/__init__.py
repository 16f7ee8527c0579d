"""Servers the stack runs beside the cluster: PostgreSQL and Stripe's own stripe-mock."""
