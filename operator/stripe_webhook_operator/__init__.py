"""Kubernetes operator that keeps Stripe webhook endpoints in line with StripeWebhook resources."""
