"""The command line: flags, their environment variables, and durations."""

from __future__ import annotations

import argparse
import gc
import resource
from pathlib import Path

import pytest

from stripe_webhook_receiver import cli
from stripe_webhook_receiver.cli import (
    RESERVED_FILES,
    build_parser,
    duration,
    open_files_for,
    positive,
)


def test_every_flag_has_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_SECRETS_DIR", "/mnt/hooks")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_DATABASE_URL", "postgresql://db/receiver")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_HOST", "127.0.0.1")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_PORT", "9000")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_TOLERANCE", "2m")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_RETENTION", "7d")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_MAX_CONNECTIONS", "100")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_MAX_HEADER_BYTES", "4096")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_CLIENT_TIMEOUT", "3s")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_KEEP_ALIVE_TIMEOUT", "2")
    monkeypatch.setenv("STRIPE_WEBHOOK_RECEIVER_MAX_PENDING_BODY_BYTES", "1000000")
    args = build_parser().parse_args([])
    assert args.command == "serve"
    assert args.secrets_dir == Path("/mnt/hooks")
    assert args.database_url == "postgresql://db/receiver"
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    assert (args.tolerance, args.retention) == (120, 7 * 86400)
    assert args.log_level == "debug"
    assert (args.max_connections, args.max_header_bytes) == (100, 4096)
    assert (args.client_timeout, args.keep_alive_timeout) == (3, 2)
    assert args.max_pending_body_bytes == 1_000_000
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


def test_limits_default_to_what_the_chart_memory_limit_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MAX_CONNECTIONS", "MAX_HEADER_BYTES", "CLIENT_TIMEOUT", "MAX_PENDING_BODY_BYTES"):
        monkeypatch.delenv(f"STRIPE_WEBHOOK_RECEIVER_{name}", raising=False)
    args = build_parser().parse_args([])
    assert (args.max_connections, args.max_header_bytes, args.client_timeout) == (2048, 16384, 10)
    assert args.max_pending_body_bytes == 64 * 1024 * 1024


def test_counts_must_be_whole_numbers_of_at_least_one() -> None:
    assert positive("12") == 12
    for bad in ("0", "-3", "1.5", "many", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="write digits only"):
            positive(bad)


def test_the_open_file_limit_bounds_the_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fitting = open_files_for(10**9)
    # The soft limit was raised to the hard one, which then bounds the connections.
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    assert fitting == hard - RESERVED_FILES or hard == resource.RLIM_INFINITY
    assert open_files_for(10) == 10
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_settle_collector_takes_what_start_up_made_out_of_later_collections() -> None:
    made_at_start_up = [{"route": "/webhooks"}]
    assert any(obj is made_at_start_up for obj in gc.get_objects())
    try:
        cli.settle_collector()
        assert gc.get_freeze_count() > 0
        # A frozen object is in no generation the collector scans.
        assert not any(obj is made_at_start_up for obj in gc.get_objects())
        made_later = [{"request": 1}]
        assert any(obj is made_later for obj in gc.get_objects())
    finally:
        gc.unfreeze()
