"""The mounted secrets directory: one `<namespace>.<name>.json` per webhook, reloaded on change.

The kubelet mounts a Secret as a directory whose visible files are symlinks into `..data`,
itself a symlink to a timestamped folder that the kubelet swaps atomically on each update.
We poll cheaply (a readlink and a few stats) and re-read only when something changed, so a
swap is seen within a fraction of a second without inotify and without a restart. A file
that does not parse keeps that webhook's last good configuration and is reported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stripe_webhook_receiver.events import DEFAULT_ENABLED_EVENTS, READABLE_EVENT_TYPES
from stripe_webhook_receiver.signing import SigningSecret

DATA_LINK = "..data"
SUFFIX = ".json"
MAX_FILE_BYTES = 256 * 1024


class SecretsFileError(ValueError):
    """A webhook file in the secrets directory is not what the operator writes."""


@dataclass(frozen=True)
class WebhookConfig:
    """What the receiver knows about one webhook: its secrets, app key hash, entitlements and
    the event types it accepts."""

    webhook: str
    endpoint_id: str
    livemode: bool
    signing_secrets: tuple[SigningSecret, ...]
    receipts_key_sha256: bytes = field(repr=False)
    entitlements: Mapping[str, tuple[str, ...]]
    enabled_events: tuple[str, ...] = DEFAULT_ENABLED_EVENTS

    @property
    def fingerprints(self) -> list[str]:
        """The public fingerprints of the signing secrets held, newest first as written."""
        return [s.fingerprint for s in self.signing_secrets]


@dataclass
class ReloadReport:
    """What one look at the directory found: whether anything changed, and the broken files."""

    changed: bool = False
    errors: dict[str, str] = field(default_factory=dict)


def webhook_of_filename(filename: str) -> str | None:
    """Return `namespace/name` for `<namespace>.<name>.json`, or None for any other name.

    Namespaces are DNS labels (no dots); names may hold dots, so the first dot splits them.
    """
    if filename.startswith(".") or not filename.endswith(SUFFIX):
        return None
    namespace, dot, name = filename[: -len(SUFFIX)].partition(".")
    if not dot or not namespace or not name:
        return None
    return f"{namespace}/{name}"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SecretsFileError(message)


def _parse_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    _require(isinstance(value, str), f"`{where}` must be an RFC 3339 time string or null.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    _require(
        parsed is not None and parsed.tzinfo is not None,
        f"`{where}` must be an RFC 3339 time with a zone, such as '2026-11-28T10:00:00Z'.",
    )
    assert parsed is not None
    return parsed


def _parse_secrets(value: Any) -> tuple[SigningSecret, ...]:
    _require(
        isinstance(value, list) and len(value) > 0,
        "`signing_secrets` must be a non-empty list of {`secret`, `not_after`} objects.",
    )
    result = []
    for index, item in enumerate(value):
        where = f"signing_secrets[{index}]"
        _require(isinstance(item, dict), f"`{where}` must be an object.")
        secret = item.get("secret")
        _require(
            isinstance(secret, str) and len(secret) > 0,
            f"`{where}.secret` must be a non-empty string.",
        )
        result.append(
            SigningSecret.of(secret, _parse_time(item.get("not_after"), where + ".not_after"))
        )
    return tuple(result)


def _parse_entitlements(value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    _require(isinstance(value, dict), "`entitlements` must map names to lists of product ids.")
    result: dict[str, tuple[str, ...]] = {}
    for name, products in value.items():
        _require(
            isinstance(products, list) and all(isinstance(p, str) for p in products),
            f"`entitlements.{name}` must be a list of product id strings.",
        )
        result[name] = tuple(products)
    return result


def _parse_enabled_events(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_ENABLED_EVENTS
    readable = " or ".join(f"'{name}'" for name in READABLE_EVENT_TYPES)
    _require(
        isinstance(value, list) and len(value) > 0,
        f"`enabled_events` must be a non-empty list of event types ({readable}), or be left "
        "out for ['customer.subscription.updated'].",
    )
    for index, name in enumerate(value):
        _require(
            name in READABLE_EVENT_TYPES,
            f"`enabled_events[{index}]` must be {readable}, the event types the receiver reads.",
        )
    return tuple(dict.fromkeys(value))


def parse_webhook_file(filename: str, content: bytes) -> WebhookConfig:
    """Parse one webhook file of the aggregated receiver Secret, or raise SecretsFileError."""
    expected = webhook_of_filename(filename)
    if expected is None:
        raise SecretsFileError("The file name must be `<namespace>.<name>.json`.")
    try:
        data = json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise SecretsFileError(f"The file is not JSON ({type(exc).__name__}).") from None
    _require(isinstance(data, dict), "The file must hold one JSON object.")
    _require(
        data.get("webhook") == expected,
        f"`webhook` must be '{expected}', the namespace and name the file is named after.",
    )
    endpoint_id = data.get("endpoint_id")
    _require(isinstance(endpoint_id, str), "`endpoint_id` must be a string such as 'we_...'.")
    livemode = data.get("livemode", False)
    _require(isinstance(livemode, bool), "`livemode` must be true or false.")
    key_hash = data.get("receipts_api_key_sha256")
    _require(
        isinstance(key_hash, str) and len(key_hash) == 64,
        "`receipts_api_key_sha256` must be the 64-digit hex SHA-256 of the receipts API key.",
    )
    try:
        key_digest = bytes.fromhex(key_hash)
    except ValueError:
        raise SecretsFileError(
            "`receipts_api_key_sha256` must be the 64-digit hex SHA-256 of the receipts API key."
        ) from None
    return WebhookConfig(
        webhook=expected,
        endpoint_id=endpoint_id,
        livemode=livemode,
        signing_secrets=_parse_secrets(data.get("signing_secrets")),
        receipts_key_sha256=key_digest,
        entitlements=_parse_entitlements(data.get("entitlements")),
        enabled_events=_parse_enabled_events(data.get("enabled_events")),
    )


def _stamp(directory: Path) -> tuple[object, ...] | None:
    """A cheap summary that changes whenever the directory's content may have changed."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None
    try:
        target: str | None = os.readlink(directory / DATA_LINK)
    except OSError:
        target = None
    files: list[tuple[object, ...]] = []
    for name in names:
        if webhook_of_filename(name) is None:
            continue
        try:
            st = os.stat(directory / name)
            files.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            files.append((name, None))
    return (target, tuple(files))


class SecretsDirectory:
    """The webhooks configured by the mounted directory, as of the last look."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.webhooks: dict[str, WebhookConfig] = {}
        self.loaded = False
        self.errors: dict[str, str] = {}
        self._stamp: tuple[object, ...] | None = None

    def get(self, webhook: str) -> WebhookConfig | None:
        """Return the configuration of `namespace/name`, or None if it is not loaded."""
        return self.webhooks.get(webhook)

    def refresh(self) -> ReloadReport:
        """Re-read the directory if it changed since the last call; report what happened."""
        stamp = _stamp(self.path)
        if stamp is None:
            if self._stamp is None and not self.loaded:
                return ReloadReport(errors={".": "The secrets directory cannot be read."})
            return ReloadReport()
        if stamp == self._stamp:
            return ReloadReport()
        self._stamp = stamp
        report = ReloadReport(changed=True)
        fresh: dict[str, WebhookConfig] = {}
        for name in sorted(os.listdir(self.path)):
            webhook = webhook_of_filename(name)
            if webhook is None:
                continue
            try:
                with open(self.path / name, "rb") as handle:
                    content = handle.read(MAX_FILE_BYTES + 1)
                _require(len(content) <= MAX_FILE_BYTES, "The file is larger than 256 KiB.")
                fresh[webhook] = parse_webhook_file(name, content)
            except (OSError, SecretsFileError) as exc:
                message = str(exc) if isinstance(exc, SecretsFileError) else type(exc).__name__
                report.errors[name] = message
                previous = self.webhooks.get(webhook)
                if previous is not None:
                    fresh[webhook] = previous
        self.webhooks = fresh
        self.errors = report.errors
        self.loaded = True
        return report

    def webhook_for_key(self, presented: str) -> WebhookConfig | None:
        """Return the webhook whose receipts API key is `presented`, comparing every hash.

        Every configured hash is compared in constant time and none is skipped, so the time
        taken does not depend on which app (if any) the key belongs to.
        """
        digest = hashlib.sha256(presented.encode()).digest()
        found: WebhookConfig | None = None
        for config in self.webhooks.values():
            if hmac.compare_digest(digest, config.receipts_key_sha256) and found is None:
                found = config
        return found
