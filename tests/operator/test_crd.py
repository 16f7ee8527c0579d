"""The StripeWebhook CRD: its file and examples (unit), and what a real API server makes of
them (integration): accepted, defaulted, every invalid example refused with its message,
`spec.secretName` immutable, `spec.apiKeySecretRef` immutable once the endpoint exists,
descriptions in `kubectl explain`, printer columns in `get`.
The CRD is applied once per session by the `stripewebhook_crd` fixture (conftest.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
import yaml

from devstack.cluster.kubectl import Kubectl
from devstack.project.objects import get_json
from stripe_webhook_operator import constants

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / "stripewebhooks.yaml"
EXAMPLES = REPO_ROOT / "examples"
MAIN_EXAMPLE = EXAMPLES / "stripewebhook.yaml"
INVALID_EXAMPLES = sorted((EXAMPLES / "invalid").glob("*.yaml"))
CRD_NAME = f"{constants.PLURAL}.{constants.GROUP}"
EXPECT_PREFIX = "# expect: "
SUBSCRIPTION_DELETED = "customer.subscription.deleted"


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def version_schema() -> dict[str, Any]:
    (version,) = load_crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def expected_messages(path: Path) -> list[str]:
    """The `# expect: ` lines at the top of an invalid example."""
    messages = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if line.startswith(EXPECT_PREFIX):
            messages.append(line.removeprefix(EXPECT_PREFIX).strip())
    return messages


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema of `schema` with its dotted path ('[]' for items, '{}' for values)."""
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


# --- unit: the files ------------------------------------------------------------------------


def test_crd_names_match_the_constants() -> None:
    crd = load_crd()
    names = crd["spec"]["names"]
    (version,) = crd["spec"]["versions"]
    assert crd["metadata"]["name"] == CRD_NAME
    assert crd["spec"]["group"] == constants.GROUP
    assert (names["kind"], names["plural"], names["singular"]) == (
        constants.KIND,
        constants.PLURAL,
        constants.SINGULAR,
    )
    assert names["shortNames"] == [constants.SHORT_NAME]
    assert names["categories"] == [constants.CATEGORY]
    assert version["name"] == constants.VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_every_spec_and_status_field_has_a_description() -> None:
    schema = version_schema()
    missing = [
        path
        for root in ("spec", "status")
        for path, sub in walk(schema["properties"][root], root)
        if not path.endswith(("[]", "{}")) and not sub.get("description")
    ]
    assert missing == []


def test_every_string_is_bounded_and_every_list_and_map_too() -> None:
    unbounded = []
    for path, sub in walk(version_schema()["properties"]["spec"], "spec"):
        kind = sub.get("type")
        if kind == "string" and "maxLength" not in sub and "enum" not in sub:
            unbounded.append(path)
        if kind == "array" and "maxItems" not in sub:
            unbounded.append(path)
        if kind == "object" and "additionalProperties" in sub and "maxProperties" not in sub:
            unbounded.append(path)
    for path, sub in walk(version_schema()["properties"]["status"], "status"):
        if sub.get("type") == "string" and not (
            "maxLength" in sub or "enum" in sub or sub.get("format") == "date-time"
        ):
            unbounded.append(path)
        if sub.get("type") == "array" and "maxItems" not in sub:
            unbounded.append(path)
    assert unbounded == []


def test_status_has_no_phase_and_keeps_the_previous_versions_rotation_until_rewritten() -> None:
    # Rotation progress is the `Rotating` condition; the API conventions deprecate phases.
    assert "phase" not in CRD_PATH.read_text().lower()
    status = version_schema()["properties"]["status"]["properties"]
    # What the 0.1 releases wrote must survive (not be pruned) until the operator reads it.
    rotation = status["rotation"]
    assert rotation["x-kubernetes-preserve-unknown-fields"] is True
    assert status["newEndpointParams"]["x-kubernetes-preserve-unknown-fields"] is True


def test_default_stripe_api_version_is_the_one_the_stripe_library_is_pinned_to() -> None:
    spec = version_schema()["properties"]["spec"]["properties"]
    assert spec["stripeApiVersion"]["default"] == constants.DEFAULT_STRIPE_API_VERSION
    assert stripe.api_version == constants.DEFAULT_STRIPE_API_VERSION


def test_only_the_subscription_updated_event_is_the_default() -> None:
    events = version_schema()["properties"]["spec"]["properties"]["enabledEvents"]
    assert events["default"] == [constants.SUBSCRIPTION_UPDATED]


def test_main_example_is_a_stripewebhook_without_namespace() -> None:
    (webhook,) = yaml.safe_load_all(MAIN_EXAMPLE.read_text())
    assert webhook["apiVersion"] == constants.API_VERSION
    assert webhook["kind"] == constants.KIND
    # Left out so that `kubectl apply -n NS` puts it anywhere.
    assert "namespace" not in webhook["metadata"]
    secret = yaml.safe_load((EXAMPLES / "api-key-secret.yaml").read_text())
    assert webhook["spec"]["apiKeySecretRef"] == {
        "name": secret["metadata"]["name"],
        "key": next(iter(secret["stringData"])),
    }


def test_there_are_invalid_examples() -> None:
    assert len(INVALID_EXAMPLES) >= 10


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda path: path.stem)
def test_invalid_example_parses_and_names_its_expected_message(path: Path) -> None:
    (webhook,) = yaml.safe_load_all(path.read_text())
    assert webhook["kind"] == constants.KIND
    # The file name is the object name, so a refusal names the case.
    assert path.stem in webhook["metadata"]["name"]
    assert path.read_text().startswith(EXPECT_PREFIX)
    assert all(len(message) > 10 for message in expected_messages(path))


# --- integration: a real API server -----------------------------------------------------------


def crd_condition(kubectl: Kubectl, condition_type: str) -> dict[str, Any]:
    crd = get_json(kubectl, "crd", CRD_NAME)
    (condition,) = [c for c in crd["status"]["conditions"] if c["type"] == condition_type]
    return condition


@pytest.mark.integration
def test_crd_is_accepted_established_and_its_names_are_approved(
    stripewebhook_crd: None, kubectl: Kubectl
) -> None:
    assert crd_condition(kubectl, "Established")["status"] == "True"
    assert crd_condition(kubectl, "NamesAccepted")["status"] == "True"
    resources = kubectl("api-resources", f"--api-group={constants.GROUP}", "-o", "wide").stdout
    assert re.search(rf"^{constants.PLURAL}\s+{constants.SHORT_NAME}\s", resources, re.M)
    assert constants.CATEGORY in resources


@pytest.mark.integration
def test_main_example_is_accepted_and_gets_the_defaults(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    kubectl("apply", "-n", kube_namespace, "-f", str(MAIN_EXAMPLE))
    webhook = get_json(kubectl, "-n", kube_namespace, f"{constants.PLURAL}/my-app")
    spec = webhook["spec"]
    assert spec["enabledEvents"] == [constants.SUBSCRIPTION_UPDATED]
    assert spec["stripeApiVersion"] == constants.DEFAULT_STRIPE_API_VERSION
    assert (spec["connect"], spec["disabled"], spec["deletionPolicy"]) == (False, False, "Delete")
    assert spec["rotation"] == {"every": "2160h", "overlap": "24h"}
    assert "secretName" not in spec


@pytest.mark.integration
@pytest.mark.parametrize(
    "events",
    [
        [constants.SUBSCRIPTION_UPDATED, SUBSCRIPTION_DELETED],
        [SUBSCRIPTION_DELETED, constants.SUBSCRIPTION_UPDATED],
    ],
    ids=["updated-deleted", "deleted-updated"],
)
def test_immediate_cancellations_are_admitted_beside_updates(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str, events: list[str]
) -> None:
    name = f"cancels-{events[0].rsplit('.', 1)[1]}"
    create_webhook(kubectl, kube_namespace, name, enabledEvents=events)
    spec = get_json(kubectl, "-n", kube_namespace, f"{constants.PLURAL}/{name}")["spec"]
    assert spec["enabledEvents"] == events
    # And back to the default set, in place.
    reverted = merge_patch(
        kubectl, kube_namespace, name, {"spec": {"enabledEvents": [constants.SUBSCRIPTION_UPDATED]}}
    )
    assert reverted.returncode == 0, reverted.stderr


@pytest.mark.integration
def test_minimal_webhook_gets_every_default(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    manifest = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": "minimal"},
        "spec": {
            "apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"},
            "url": "http://127.0.0.1:8080/webhooks/ns/minimal",
            "rotation": {},
        },
    }
    kubectl("create", "-n", kube_namespace, "-f", "-", input=json.dumps(manifest))
    spec = get_json(kubectl, "-n", kube_namespace, f"{constants.PLURAL}/minimal")["spec"]
    assert spec["rotation"] == {"overlap": "24h"}
    assert spec["deletionPolicy"] == "Delete"


@pytest.mark.integration
@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda path: path.stem)
def test_invalid_example_is_refused_by_the_api_server_with_its_message(
    path: Path, stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    result = kubectl("create", "-n", kube_namespace, "-f", str(path), check=False)
    assert result.returncode != 0
    for message in expected_messages(path):
        assert message in result.stderr
    listed = kubectl("get", "-n", kube_namespace, constants.PLURAL, "-o", "name").stdout
    assert listed.strip() == ""


def create_webhook(kubectl: Kubectl, namespace: str, name: str, **spec: Any) -> None:
    manifest = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": {"apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"}, **spec},
    }
    kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def merge_patch(kubectl: Kubectl, namespace: str, name: str, patch: dict[str, Any]) -> Any:
    return kubectl(
        "patch",
        "-n",
        namespace,
        f"{constants.PLURAL}/{name}",
        "--type=merge",
        "-p",
        json.dumps(patch),
        check=False,
    )


def patch_status(kubectl: Kubectl, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Write `status` through the status subresource, as the operator does."""
    kubectl(
        "patch",
        "-n",
        namespace,
        f"{constants.PLURAL}/{name}",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


@pytest.mark.integration
def test_secret_name_cannot_change_after_creation(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    create_webhook(kubectl, kube_namespace, "named", secretName="named-signing")
    changed = merge_patch(kubectl, kube_namespace, "named", {"spec": {"secretName": "other"}})
    assert changed.returncode != 0
    assert "`spec.secretName` must not change after creation" in changed.stderr
    assert "keep 'named-signing'" in changed.stderr
    removed = merge_patch(kubectl, kube_namespace, "named", {"spec": {"secretName": None}})
    assert removed.returncode != 0
    # Other fields stay editable.
    edited = merge_patch(kubectl, kube_namespace, "named", {"spec": {"description": "edited"}})
    assert edited.returncode == 0, edited.stderr


@pytest.mark.integration
def test_api_key_secret_ref_is_editable_until_the_endpoint_exists(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    create_webhook(kubectl, kube_namespace, "keyed")
    # A typo before the operator created anything may be fixed in place.
    fixed = {"spec": {"apiKeySecretRef": {"name": "stripe-key", "key": "api-key"}}}
    edited = merge_patch(kubectl, kube_namespace, "keyed", fixed)
    assert edited.returncode == 0, edited.stderr
    patch_status(kubectl, kube_namespace, "keyed", {"endpointId": "we_123"})
    moved = {"spec": {"apiKeySecretRef": {"name": "other-account", "key": "api-key"}}}
    changed = merge_patch(kubectl, kube_namespace, "keyed", moved)
    assert changed.returncode != 0
    assert "`spec.apiKeySecretRef` must not change once the endpoint exists" in changed.stderr
    assert "Put a new key of the same account into the same Secret" in changed.stderr
    # Other fields stay editable once the endpoint exists.
    other = merge_patch(kubectl, kube_namespace, "keyed", {"spec": {"description": "edited"}})
    assert other.returncode == 0, other.stderr


@pytest.mark.integration
def test_absent_secret_name_may_only_be_set_to_its_default(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    create_webhook(kubectl, kube_namespace, "unnamed")
    changed = merge_patch(kubectl, kube_namespace, "unnamed", {"spec": {"secretName": "other"}})
    assert changed.returncode != 0
    assert "keep 'unnamed-stripe-webhook'" in changed.stderr
    same = merge_patch(
        kubectl, kube_namespace, "unnamed", {"spec": {"secretName": "unnamed-stripe-webhook"}}
    )
    assert same.returncode == 0, same.stderr


@pytest.mark.integration
def test_http_url_is_admitted_for_loopback_hosts(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    for index, url in enumerate(
        ["http://localhost:8080/w", "http://127.0.0.1/w", "http://[::1]:9/w", "https://x.example/w"]
    ):
        create_webhook(kubectl, kube_namespace, f"url-{index}", url=url)


@pytest.mark.integration
def test_values_at_every_limit_are_admitted(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    metadata = {f"key-{index:02d}": "v" for index in range(44)} | {"k" * 40: "v" * 500}
    manifest = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": "n" * 184},
        "spec": {
            "apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"},
            "description": "d" * 5000,
            "metadata": metadata,
            "stripeApiVersion": "2024-06-20",
            "rotation": {"every": "1h", "overlap": "59m59.5s"},
            "entitlements": {"premium.v2": ["prod_123", "custom-product-id"]},
        },
    }
    kubectl("create", "-n", kube_namespace, "-f", "-", input=json.dumps(manifest))


@pytest.mark.integration
def test_explain_shows_the_field_descriptions(stripewebhook_crd: None, kubectl: Kubectl) -> None:
    # Discovery of a new CRD's OpenAPI may lag Established by a moment; kubectl retries it.
    explained = kubectl("explain", f"{constants.SINGULAR}.spec.url").stdout
    assert "must use https://" in explained
    explained = kubectl("explain", f"{constants.SINGULAR}.spec.rotation.overlap").stdout
    assert "Go duration" in explained


@pytest.mark.integration
def test_printer_columns_show_status_in_get(
    stripewebhook_crd: None, kubectl: Kubectl, kube_namespace: str
) -> None:
    create_webhook(kubectl, kube_namespace, "shown")
    status = {
        "url": "https://hooks.example.com/webhooks/x/shown",
        "endpointId": "we_shown123",
        "stripeStatus": "enabled",
        "secretVersion": 3,
        "conditions": [
            {
                "type": constants.CONDITION_READY,
                "status": "True",
                "reason": "EndpointLive",
                "message": "The endpoint is live.",
                "lastTransitionTime": "2026-11-27T20:00:00Z",
            },
            {
                "type": constants.CONDITION_ROTATING,
                "status": "True",
                "reason": "Propagating",
                "message": "Waiting for the receiver.",
                "lastTransitionTime": "2026-11-27T20:00:00Z",
            },
        ],
    }
    patch_status(kubectl, kube_namespace, "shown", status)
    header, row = kubectl("get", "-n", kube_namespace, constants.SHORT_NAME).stdout.splitlines()
    assert header.split() == ["NAME", "URL", "ENDPOINT", "STATUS", "READY", "AGE"]
    assert row.split()[:5] == [
        "shown",
        "https://hooks.example.com/webhooks/x/shown",
        "we_shown123",
        "enabled",
        "True",
    ]
    wide = kubectl("get", "-n", kube_namespace, constants.SHORT_NAME, "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-2:] == ["VERSION", "AGE"]
    assert wide.splitlines()[0].split()[-3:] == ["ROTATING", "VERSION", "AGE"]
    assert wide.splitlines()[1].split()[5:7] == ["Propagating", "3"]
    by_category = kubectl("get", "-n", kube_namespace, constants.CATEGORY, "-o", "name").stdout
    assert by_category.strip() == f"{constants.SINGULAR}.{constants.GROUP}/shown"
