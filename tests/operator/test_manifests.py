"""Pure builders: the parsed spec with defaults, endpoint parameters, update diffs, Secret
data, the receiver's entry and idempotency keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests
from stripe_webhook_operator.manifests import SigningKeys, StripeEndpoint
from stripe_webhook_operator.secret_value import SecretValue


def body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "billing", "name": "my-app", "uid": "uid-1"},
        "spec": {"apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"}, **spec},
    }


def endpoint(**fields: Any) -> StripeEndpoint:
    values: dict[str, Any] = {
        "id": "we_1",
        "url": "https://hooks.example.com/webhooks/billing/my-app",
        "status": "enabled",
        "enabled_events": (c.SUBSCRIPTION_UPDATED,),
        "description": None,
        "metadata": manifests.endpoint_metadata(
            manifests.parse_webhook(body(), "https://hooks.example.com"), "cluster", 1
        ),
        "api_version": "2026-10-28.endive",
        "livemode": False,
    }
    values.update(fields)
    return StripeEndpoint(**values)


def test_defaults_follow_design() -> None:
    spec = manifests.parse_webhook(body(), "https://hooks.example.com")
    assert spec.url == "https://hooks.example.com/webhooks/billing/my-app"
    assert spec.enabled_events == (c.SUBSCRIPTION_UPDATED,)
    assert spec.secret_name == "my-app-stripe-webhook"
    assert spec.api_version == "2026-10-28.endive"
    assert spec.rotation_overlap == 24 * 3600
    assert spec.rotation_every is None
    assert spec.deletion_policy == "Delete"


def test_url_is_none_without_spec_url_or_public_base() -> None:
    assert manifests.parse_webhook(body(), None).url is None


def test_create_params_carry_operator_metadata_and_version() -> None:
    spec = manifests.parse_webhook(body(metadata={"team": "billing"}, connect=True), None)
    params = manifests.create_params(spec, "cluster-a", 3)
    assert params["metadata"] == {
        "team": "billing",
        c.STRIPE_METADATA_UID: "uid-1",
        c.STRIPE_METADATA_NAMESPACE: "billing",
        c.STRIPE_METADATA_NAME: "my-app",
        c.STRIPE_METADATA_CLUSTER: "cluster-a",
        c.STRIPE_METADATA_SECRET_VERSION: "3",
    }
    assert params["connect"] is True
    assert params["api_version"] == "2026-10-28.endive"


def test_idempotency_key_depends_on_uid_and_version_only() -> None:
    assert manifests.idempotency_key("u", 1) == manifests.idempotency_key("u", 1)
    assert manifests.idempotency_key("u", 1) != manifests.idempotency_key("u", 2)
    assert manifests.idempotency_key("u", 1) != manifests.idempotency_key("v", 1)


def test_update_params_empty_when_in_line() -> None:
    spec = manifests.parse_webhook(body(), "https://hooks.example.com")
    assert manifests.update_params(spec, endpoint(), "cluster", 1) == {}


def test_update_params_name_only_what_differs_and_blank_removed_metadata() -> None:
    spec = manifests.parse_webhook(
        body(url="https://new.example.com/x", description="d", disabled=True),
        "https://hooks.example.com",
    )
    current = endpoint(metadata={**endpoint().metadata, "stale": "1"})
    params = manifests.update_params(spec, current, "cluster", 1)
    assert params == {
        "url": "https://new.example.com/x",
        "description": "d",
        "metadata": {"stale": ""},
        "disabled": True,
    }


def test_update_params_re_enable_endpoint_stripe_disabled() -> None:
    spec = manifests.parse_webhook(body(), "https://hooks.example.com")
    assert manifests.update_params(spec, endpoint(status="disabled"), "cluster", 1) == {
        "disabled": False
    }


def test_secret_data_round_trips_and_drops_previous_with_none() -> None:
    keys = SigningKeys(SecretValue("whsec_a"), SecretValue("rk_x"), "we_1")
    data = manifests.webhook_secret_data(keys)
    assert data[c.SECRET_KEY_PREVIOUS_SIGNING] is None
    stored = {k: v for k, v in data.items() if v is not None}
    assert manifests.read_signing_keys(stored) == keys
    assert manifests.read_signing_keys({}) is None


def test_receiver_entry_matches_the_secret_layout() -> None:
    spec = manifests.parse_webhook(body(entitlements={"premium": ["prod_1"]}), None)
    keys = SigningKeys(
        SecretValue("whsec_new"), SecretValue("rk_x"), "we_2", previous=SecretValue("whsec_old")
    )
    moment = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    entry = json.loads(manifests.receiver_entry(spec, keys, False, moment).reveal())
    assert entry == {
        "webhook": "billing/my-app",
        "endpoint_id": "we_2",
        "livemode": False,
        "signing_secrets": [
            {"secret": "whsec_new", "not_after": None},
            {"secret": "whsec_old", "not_after": "2026-11-28T10:00:00Z"},
        ],
        "receipts_api_key_sha256": SecretValue("rk_x").sha256(),
        "entitlements": {"premium": ["prod_1"]},
        "enabled_events": ["customer.subscription.updated"],
    }
    assert manifests.receiver_entry_key("billing", "my-app") == "billing.my-app.json"


def test_receiver_entry_names_deleted_where_the_webhook_enables_it() -> None:
    both = ["customer.subscription.updated", "customer.subscription.deleted"]
    spec = manifests.parse_webhook(body(enabledEvents=both), None)
    keys = SigningKeys(SecretValue("whsec_new"), SecretValue("rk_x"), "we_2")
    entry = json.loads(manifests.receiver_entry(spec, keys, False, None).reveal())
    assert entry["enabled_events"] == both


def test_secret_value_never_shows_itself() -> None:
    value = SecretValue("whsec_topsecret")
    assert "topsecret" not in repr(value)
    assert "topsecret" not in str(value)
    assert "topsecret" not in f"{value!r} {value}"
    assert value.fingerprint() == value.sha256()[:16]


def test_receipts_keys_are_random() -> None:
    assert manifests.new_receipts_api_key() != manifests.new_receipts_api_key()
