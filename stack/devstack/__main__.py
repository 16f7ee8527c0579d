"""`python -m devstack up|down|status`: the local stack in the background (`make dev-up`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from devstack import devenv
from devstack.processes import StackError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of `up`, `down`, `status` and return its exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Start or stop the local stack; its state lives in .dev/ or $DEVSTACK_DIR.",
    )
    parser.add_argument(
        "command",
        choices=["up", "down", "status"],
        help="up: start it and write the env file; down: stop it; status: list its processes",
    )
    args = parser.parse_args(argv)
    command = {"up": devenv.up, "down": devenv.down, "status": devenv.status}[args.command]
    try:
        return command()
    except StackError as exc:
        # Whatever had started is stopped again; the logs stay for the reader.
        print(f"{exc}\nLogs are in {devenv.dev_dir()}.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
