"""Servers the stack runs beside the cluster: PostgreSQL, stripe-mock and Prometheus."""
