"""Pytest fixtures for the local stack (filled in by its component)."""
