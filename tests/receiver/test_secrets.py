"""The secrets directory in the kubelet's layout: parse, swap, broken files, key lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripe_webhook_receiver.secrets import (
    SecretsDirectory,
    SecretsFileError,
    parse_webhook_file,
    webhook_of_filename,
)
from stripe_webhook_receiver.signing import fingerprint
from tests.receiver.layout import project, webhook_file


def test_file_names_map_to_namespace_and_name() -> None:
    assert webhook_of_filename("billing.my-app.json") == "billing/my-app"
    assert webhook_of_filename("billing.my.dotted.app.json") == "billing/my.dotted.app"
    for bad in ("..data", "..2026_01_01", "billing.json", ".billing.app.json", "a.b.yaml"):
        assert webhook_of_filename(bad) is None


def test_the_kubelet_layout_is_read_and_a_swap_is_seen(tmp_path: Path) -> None:
    directory = SecretsDirectory(tmp_path)
    project(tmp_path, dict([webhook_file("billing/app", [("whsec_one", None)], "key")]))
    assert directory.refresh().changed
    config = directory.get("billing/app")
    assert config is not None
    assert config.fingerprints == [fingerprint("whsec_one")]
    assert not directory.refresh().changed
    project(
        tmp_path,
        dict(
            [
                webhook_file(
                    "billing/app",
                    [("whsec_two", None), ("whsec_one", "2026-11-28T10:00:00Z")],
                    "key",
                ),
                webhook_file("shop/other", [("whsec_x", None)], "other-key"),
            ]
        ),
    )
    report = directory.refresh()
    assert report.changed
    assert report.errors == {}
    config = directory.get("billing/app")
    assert config is not None
    assert config.fingerprints == [fingerprint("whsec_two"), fingerprint("whsec_one")]
    assert config.signing_secrets[1].not_after is not None
    assert directory.get("shop/other") is not None
    project(tmp_path, dict([webhook_file("shop/other", [("whsec_x", None)], "other-key")]))
    directory.refresh()
    assert directory.get("billing/app") is None


def test_enabled_events_default_to_updated_alone_and_may_add_deleted() -> None:
    name, content = webhook_file("billing/app", [("whsec_e", None)], "key")
    assert parse_webhook_file(name, content).enabled_events == ("customer.subscription.updated",)
    both = ["customer.subscription.updated", "customer.subscription.deleted"]
    name, content = webhook_file("billing/app", [("whsec_e", None)], "key", enabled_events=both)
    assert parse_webhook_file(name, content).enabled_events == tuple(both)


def test_a_broken_file_keeps_the_last_good_set_and_is_reported(tmp_path: Path) -> None:
    directory = SecretsDirectory(tmp_path)
    name, good = webhook_file("billing/app", [("whsec_one", None)], "key")
    project(tmp_path, {name: good})
    directory.refresh()
    project(tmp_path, {name: good[: len(good) // 2]})
    report = directory.refresh()
    assert list(report.errors) == [name]
    config = directory.get("billing/app")
    assert config is not None
    assert config.fingerprints == [fingerprint("whsec_one")]
    assert "whsec" not in report.errors[name]


def test_a_plain_directory_without_data_link_is_read_too(tmp_path: Path) -> None:
    name, content = webhook_file("billing/app", [("whsec_one", None)], "key")
    (tmp_path / name).write_bytes(content)
    directory = SecretsDirectory(tmp_path)
    directory.refresh()
    assert directory.get("billing/app") is not None


def test_a_missing_directory_is_not_loaded(tmp_path: Path) -> None:
    directory = SecretsDirectory(tmp_path / "absent")
    assert directory.refresh().errors
    assert not directory.loaded


def test_receipts_keys_select_their_own_webhook_only(tmp_path: Path) -> None:
    project(
        tmp_path,
        dict(
            [
                webhook_file("a/app", [("whsec_a", None)], "key-a"),
                webhook_file("b/app", [("whsec_b", None)], "key-b"),
            ]
        ),
    )
    directory = SecretsDirectory(tmp_path)
    directory.refresh()
    found_a = directory.webhook_for_key("key-a")
    found_b = directory.webhook_for_key("key-b")
    assert found_a is not None
    assert found_b is not None
    assert (found_a.webhook, found_b.webhook) == ("a/app", "b/app")
    assert directory.webhook_for_key("key-c") is None
    assert directory.webhook_for_key("") is None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"webhook": "other/app"}, "`webhook`"),
        ({"signing_secrets": []}, "`signing_secrets`"),
        ({"signing_secrets": [{"secret": "", "not_after": None}]}, "secret"),
        ({"signing_secrets": [{"secret": "whsec_x", "not_after": "tomorrow"}]}, "not_after"),
        ({"signing_secrets": [{"secret": "whsec_x", "not_after": "2026-11-28T10:00:00"}]}, "zone"),
        ({"receipts_api_key_sha256": "zz" * 32}, "receipts_api_key_sha256"),
        ({"entitlements": {"premium": "prod_1"}}, "entitlements.premium"),
        ({"livemode": "no"}, "livemode"),
        ({"enabled_events": []}, "`enabled_events` must be a non-empty list"),
        ({"enabled_events": "customer.subscription.deleted"}, "`enabled_events` must be"),
        (
            {"enabled_events": ["customer.subscription.updated", "invoice.paid"]},
            "`enabled_events[1]` must be 'customer.subscription.updated' or "
            "'customer.subscription.deleted'",
        ),
    ],
)
def test_malformed_files_are_refused_with_a_reason(
    change: dict[str, object], fragment: str
) -> None:
    import json

    name, content = webhook_file("billing/app", [("whsec_secretvalue", None)], "key")
    data = json.loads(content)
    data.update(change)
    with pytest.raises(SecretsFileError) as caught:
        parse_webhook_file(name, json.dumps(data).encode())
    assert fragment in str(caught.value)
    assert "whsec_secretvalue" not in str(caught.value)
