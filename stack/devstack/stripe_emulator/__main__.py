"""`python -m devstack.stripe_emulator --port P [--rate-limit 25] [--retry-schedule 0.2,1]`."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import uvicorn

from devstack.stripe_emulator.app import create_app
from devstack.stripe_emulator.connections import DroppableH11Protocol
from devstack.stripe_emulator.delivery import DEFAULT_RETRY_SCHEDULE
from devstack.stripe_emulator.settings import Settings, parse_schedule
from devstack.stripe_emulator.versions import DEFAULT_API_VERSION


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stripe_emulator",
        description="A stateful Stripe API emulator for the local stack.",
    )
    parser.add_argument("--host", default=env("STRIPE_EMULATOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("STRIPE_EMULATOR_PORT", "12111")))
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=float(env("STRIPE_EMULATOR_RATE_LIMIT", "0")) or None,
        help="requests per second per account; 0 or unset: unlimited",
    )
    parser.add_argument(
        "--retry-schedule",
        type=parse_schedule,
        default=parse_schedule(
            env("STRIPE_EMULATOR_RETRY_SCHEDULE", ",".join(map(str, DEFAULT_RETRY_SCHEDULE)))
        ),
        help="waits in seconds between webhook delivery attempts, e.g. 0.2,0.5,1,2,5",
    )
    parser.add_argument(
        "--delivery-timeout",
        type=float,
        default=float(env("STRIPE_EMULATOR_DELIVERY_TIMEOUT", "10")),
    )
    parser.add_argument(
        "--default-api-version",
        default=env("STRIPE_EMULATOR_DEFAULT_API_VERSION", DEFAULT_API_VERSION),
        help="the API version of new accounts (events of endpoints without `api_version`)",
    )
    parser.add_argument(
        "--delivery-domain",
        default=env("STRIPE_EMULATOR_DELIVERY_DOMAIN") or None,
        help="a DNS domain whose hosts may receive events besides loopback ones",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    settings = Settings(
        rate_limit=args.rate_limit,
        retry_schedule=args.retry_schedule,
        delivery_timeout=args.delivery_timeout,
        default_api_version=args.default_api_version,
        delivery_domain=args.delivery_domain,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        http=DroppableH11Protocol,
        access_log=False,
        log_level="info",
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
