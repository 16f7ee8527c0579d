"""Writing a secrets directory the way the kubelet lays out a mounted Secret volume.

Each update writes a fresh timestamped folder, points a temporary symlink at it and renames
that over `..data` (one atomic step), then makes sure each visible key is a symlink to
`..data/<key>`, and finally removes the old folder: what the kubelet's atomic writer does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

DATA = "..data"


def webhook_file(
    webhook: str,
    secrets: list[tuple[str, str | None]],
    receipts_key: str,
    *,
    endpoint_id: str = "we_test",
    entitlements: dict[str, list[str]] | None = None,
    enabled_events: list[str] | None = None,
) -> tuple[str, bytes]:
    """Return the key name and JSON content of one webhook's entry, as the operator writes
    (`enabled_events` left out unless given: the receiver then accepts `.updated` alone)."""
    namespace, name = webhook.split("/")
    content: dict[str, Any] = {
        "webhook": webhook,
        "endpoint_id": endpoint_id,
        "livemode": False,
        "signing_secrets": [{"secret": s, "not_after": n} for s, n in secrets],
        "receipts_api_key_sha256": hashlib.sha256(receipts_key.encode()).hexdigest(),
        "entitlements": entitlements if entitlements is not None else {"premium": ["prod_premium"]},
    }
    if enabled_events is not None:
        content["enabled_events"] = enabled_events
    return f"{namespace}.{name}.json", json.dumps(content).encode()


def project(directory: Path, files: dict[str, bytes]) -> None:
    """Make `directory` hold exactly `files`, swapped in atomically the kubelet's way."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{time.monotonic_ns()}"
    fresh = directory / stamp
    fresh.mkdir()
    for key, content in files.items():
        (fresh / key).write_bytes(content)
    data = directory / DATA
    old_target = os.readlink(data) if data.is_symlink() else None
    temporary = directory / "..data_tmp"
    if temporary.is_symlink():
        temporary.unlink()
    os.symlink(stamp, temporary)
    os.rename(temporary, data)
    for key in files:
        link = directory / key
        if not link.is_symlink():
            os.symlink(f"{DATA}/{key}", link)
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if old_target is not None:
        shutil.rmtree(directory / old_target, ignore_errors=True)
