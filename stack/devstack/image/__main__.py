"""`python -m devstack.image` (`make image`): build the node's images, print size and time."""

from __future__ import annotations

import sys
import time

from devstack.image.images import build
from devstack.image.store import CACHE
from devstack.processes import StackError

MIB = 1024 * 1024


def main() -> int:
    """Build what changed and print one line per image; return 1 if a build failed."""
    log = CACHE / "logs" / "image-build.log"
    began = time.monotonic()
    try:
        built = build(log)
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    for item in built:
        how = f"built in {item.seconds:.0f} s" if item.rebuilt else "unchanged"
        print(
            f"{item.archive.name:55} {item.archive.size_bytes() / MIB:7.1f} MiB  {how}",
            flush=True,
        )
    print(f"images ready in {time.monotonic() - began:.0f} s; build log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
