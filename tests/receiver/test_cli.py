"""The command line: flags, their environment variables, and durations."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stripe_webhook_receiver.cli import build_parser, duration


def test_every_flag_has_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_SECRETS_DIR", "/mnt/hooks")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_DATABASE_URL", "postgresql://db/receiver")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_HOST", "127.0.0.1")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_PORT", "9000")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_TOLERANCE", "2m")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_RETENTION", "7d")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_LOG_LEVEL", "DEBUG")
    args = build_parser().parse_args([])
    assert args.command == "serve"
    assert args.secrets_dir == Path("/mnt/hooks")
    assert args.database_url == "postgresql://db/receiver"
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    assert (args.tolerance, args.retention) == (120, 7 * 86400)
    assert args.log_level == "debug"
    flags = build_parser().parse_args(["migrate", "--port", "9001", "--tolerance", "30"])
    assert (flags.command, flags.port, flags.tolerance) == ("migrate", 9001, 30)


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECRETS_DIR", "DATABASE_URL", "PORT", "TOLERANCE", "RETENTION"):
        monkeypatch.delenv(f"STRIPE_WEBHOOK_RECEIVER_{name}", raising=False)
    args = build_parser().parse_args([])
    assert args.secrets_dir == Path("/etc/stripe-webhooks")
    assert args.database_url.startswith("sqlite:////")
    assert (args.port, args.tolerance, args.retention) == (8000, 300, 30 * 86400)


def test_durations_accept_units_and_refuse_the_rest() -> None:
    assert [duration(v) for v in ("300", "300s", "5m", "2h", "30d")] == [
        300,
        300,
        300,
        7200,
        30 * 86400,
    ]
    for bad in ("", "5 minutes", "-1", "1.5h"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)
