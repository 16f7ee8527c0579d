"""`kubectl stripe`: argument parsing and the status table (unit), and `rotate`/`status` against
a real API server, both called in-process and found by the real kubectl on PATH (integration)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from devstack.cluster.kubectl import Kubectl
from devstack.processes import poll, wait_until
from devstack.project.objects import get_json, webhook_manifest
from devstack.project.scene import Scene
from stripe_webhook_operator import constants, plugin, plugin_cluster, plugin_recovery, plugin_view
from stripe_webhook_operator.times import rfc3339
from tests.operator.test_crd import create_webhook, patch_status

VENV_BIN = Path(sys.executable).parent


def webhook(name: str, namespace: str = "billing", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "status": status}


def condition(kind: str, state: str, reason: str = "Because") -> dict[str, str]:
    return {"type": kind, "status": state, "reason": reason, "message": "A sentence."}


# Any fixed moment: what the plugin compares with it is derived from it, never the real clock.
NOW = datetime.datetime(2031, 5, 4, 21, 0, tzinfo=datetime.UTC)


def rotating(step: str) -> dict[str, str]:
    """The `Rotating` condition at `step` (False once Idle), as the API server stores it."""
    running = "False" if step == constants.ROTATION_STEP_IDLE else "True"
    return {
        **condition(constants.CONDITION_ROTATING, running, step),
        "lastTransitionTime": rfc3339(NOW),
    }


# --- unit: arguments ----------------------------------------------------------------------


def test_rotate_arguments() -> None:
    args = plugin.build_parser().parse_args(
        [
            "rotate",
            "my-app",
            "-n",
            "billing",
            "--overlap",
            "0",
            "--wait",
            "--timeout",
            "2m",
            "--context",
            "ctx",
            "--kubeconfig",
            "/tmp/kc",
        ]
    )
    assert (args.command, args.name, args.namespace, args.overlap) == (
        "rotate",
        "my-app",
        "billing",
        "0",
    )
    assert (args.wait, args.timeout) == (True, 120.0)
    assert (args.context, args.kubeconfig) == ("ctx", "/tmp/kc")


def test_rotate_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/from/env")
    args = plugin.build_parser().parse_args(["rotate", "my-app"])
    assert (args.namespace, args.overlap, args.wait, args.timeout) == (None, None, False, 600.0)
    assert args.kubeconfig == "/from/env"


def test_status_arguments() -> None:
    args = plugin.build_parser().parse_args(["status", "-A"])
    assert (args.command, args.all_namespaces, args.name) == ("status", True, None)
    args = plugin.build_parser().parse_args(["status", "my-app", "--namespace", "billing"])
    assert (args.all_namespaces, args.name, args.namespace) == (False, "my-app", "billing")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["rotate", "x", "--overlap", "1d"], "'1d' is not a duration"),
        (["rotate", "x", "--overlap", "721h"], "choose an overlap of at most 720h"),
        (["rotate", "x", "--timeout", "0"], "'0' must be longer than 0"),
        (["rotate"], "the following arguments are required: NAME"),
        (["resize"], "invalid choice: 'resize'"),
    ],
)
def test_bad_arguments_exit_2_with_a_sentence(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        plugin.main(argv)
    assert exited.value.code == plugin.EXIT_USAGE
    assert complaint in capsys.readouterr().err


def test_missing_kubeconfig_is_one_sentence_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        plugin.main(["status", "--kubeconfig", str(tmp_path / "absent")])
    assert exited.value.code == plugin.EXIT_API_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot load the kubeconfig")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def write_kubeconfig(path: Path) -> Path:
    cluster = {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "plain", "context": {"cluster": "c", "user": "u"}},
            {"name": "billing", "context": {"cluster": "c", "user": "u", "namespace": "billing"}},
        ],
        "current-context": "plain",
    }
    path.write_text(json.dumps(config))
    return path


def test_namespace_comes_from_the_chosen_context_else_default(tmp_path: Path) -> None:
    kubeconfig = str(write_kubeconfig(tmp_path / "config"))
    assert plugin.Cluster(kubeconfig, None).default_namespace == "default"
    assert plugin.Cluster(kubeconfig, "billing").default_namespace == "billing"


def test_unknown_context_is_one_sentence(tmp_path: Path) -> None:
    kubeconfig = str(write_kubeconfig(tmp_path / "config"))
    with pytest.raises(plugin.PluginError, match="The kubeconfig has no context 'prod'; pick one"):
        plugin.Cluster(kubeconfig, "prod")


@pytest.mark.integration  # a refused connection on loopback: no stack, but still a socket
def test_unreachable_api_server_is_one_sentence_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(write_kubeconfig(tmp_path / "config"))
    with pytest.raises(SystemExit) as exited:
        plugin.main(["status", "--kubeconfig", kubeconfig])
    assert exited.value.code == plugin.EXIT_API_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot reach the Kubernetes API server at https://127.0.0.1:1")
    assert len(err.strip().splitlines()) == 1


# --- unit: rotate request and progress ----------------------------------------------------


def test_rotate_value_is_a_utc_timestamp_and_never_the_previous_one() -> None:
    moment = datetime.datetime(2026, 11, 27, 21, 0, 0, 123456, tzinfo=datetime.UTC)
    value = plugin.new_rotate_value(None, moment)
    assert value == "2026-11-27T21:00:00.123456Z"
    again = plugin.new_rotate_value(value, moment)
    assert again != value
    assert plugin.new_rotate_value(again, moment) != again


def test_rotate_annotations_clear_a_stale_overlap_without_overlap_argument() -> None:
    cleared = plugin.rotate_annotations("v1", None)
    assert cleared == {constants.ANNOTATION_ROTATE: "v1", constants.ANNOTATION_ROTATE_OVERLAP: None}
    emergency = plugin.rotate_annotations("v2", "0")
    assert emergency[constants.ANNOTATION_ROTATE_OVERLAP] == "0"


def progress(version: int, step: str | None = None, request: str | None = None) -> Any:
    status: dict[str, Any] = {"secretVersion": version}
    if step is not None:
        status["conditions"] = [rotating(step)]
    if request is not None:
        status[constants.STATUS_ROTATION_REQUEST] = request
    return plugin_view.RotationProgress.from_status(status)


def test_rotation_is_done_once_the_version_grew_and_the_new_endpoint_is_live() -> None:
    assert not progress(1).is_done(1, "r")
    assert not progress(2, "CreatingEndpoint").is_done(1, "r")
    assert not progress(2, "WaitingForPropagation", "r").is_done(1, "r")
    assert progress(2, constants.ROTATION_STEP_OVERLAP).is_done(1, "r")
    assert progress(2, constants.ROTATION_STEP_IDLE, "r").is_done(1, "r")
    assert progress(2).is_done(1, "r")


def test_rotation_queued_behind_another_is_not_done_when_the_other_finishes() -> None:
    assert not progress(2, constants.ROTATION_STEP_OVERLAP, "earlier").is_done(1, "mine")


def test_done_sentence_says_whether_the_previous_secret_still_verifies() -> None:
    now = datetime.datetime(2026, 11, 27, 21, 0, tzinfo=datetime.UTC)
    later = plugin_view.RotationProgress.from_status(
        {"secretVersion": 2, "previousSecretExpiresAt": "2026-11-28T21:00:00Z"}
    )
    assert plugin_view.done_sentence("ns", "a", later, now) == (
        "Rotation of 'ns/a' done: secret version 2 is live; "
        "the previous secret is accepted until 2026-11-28T21:00:00Z.\n"
    )
    # An emergency rotation ends the overlap at once.
    past = plugin_view.RotationProgress.from_status(
        {"secretVersion": 3, "previousSecretExpiresAt": "2026-11-27T21:00:00Z"}
    )
    assert "no longer accepted" in plugin_view.done_sentence("ns", "a", past, now)
    none = plugin_view.RotationProgress.from_status({"secretVersion": 3})
    assert "no longer accepted" in plugin_view.done_sentence("ns", "a", none, now)
    unreadable = plugin_view.RotationProgress.from_status(
        {"secretVersion": 3, "previousSecretExpiresAt": "tomorrow"}
    )
    assert "no longer accepted" in plugin_view.done_sentence("ns", "a", unreadable, now)


# --- unit: status table -------------------------------------------------------------------


def test_condition_cell_shows_reason_only_when_not_true() -> None:
    conditions = [
        condition("Ready", "True"),
        condition("Synced", "False", "StripeError"),
        condition("SecretPropagated", "Unknown", "NoReceiverConfigured"),
    ]
    assert plugin_view.condition_cell(conditions, "Ready") == "True"
    assert plugin_view.condition_cell(conditions, "Synced") == "False (StripeError)"
    assert (
        plugin_view.condition_cell(conditions, "SecretPropagated")
        == "Unknown (NoReceiverConfigured)"
    )
    assert plugin_view.condition_cell(conditions, "Other") == "<none>"


def test_rotation_step_is_the_rotating_reason_while_true() -> None:
    assert plugin_view.rotation_step([rotating("Propagating")]) == "Propagating"
    assert plugin_view.rotation_step([rotating(constants.ROTATION_STEP_IDLE)]) == "Idle"
    assert plugin_view.rotation_step([]) == "Idle"


def test_status_table_lines_up_columns_and_sorts_rows() -> None:
    table = plugin_view.status_table(
        [
            webhook(
                "zeta",
                endpointId="we_123",
                stripeStatus="enabled",
                secretVersion=2,
                lastRotationTime="2026-11-27T20:00:00Z",
                previousSecretExpiresAt="2026-11-28T20:00:00Z",
                conditions=[
                    condition("Ready", "True"),
                    condition("Synced", "True"),
                    condition("SecretPropagated", "False", "WaitingForReceiver"),
                    rotating(constants.ROTATION_STEP_OVERLAP),
                ],
            ),
            webhook("alpha", namespace="apps"),
        ]
    )
    header, first, second = table.splitlines()
    assert header == (
        "NAMESPACE   NAME    ENDPOINT   STRIPE STATUS   SECRET VERSION   LAST ROTATION"
        "          OVERLAP ENDS           READY    SYNCED   SECRETPROPAGATED"
        "             ROTATING   RECOVERED   OPEN GAPS"
    )
    assert first.index("alpha") == header.index("   NAME ") + 3
    assert first.split() == ["apps", "alpha"] + ["<none>"] * 11
    assert second.split() == [
        "billing",
        "zeta",
        "we_123",
        "enabled",
        "2",
        "2026-11-27T20:00:00Z",
        "2026-11-28T20:00:00Z",
        "True",
        "True",
        "False",
        "(WaitingForReceiver)",
        "Overlap",
        "<none>",
        "<none>",
    ]
    # Every column starts at the same offset on every line.
    offset = header.index("SECRETPROPAGATED")
    assert second[offset:].split("   ")[:2] == ["False (WaitingForReceiver)", "Overlap"]
    assert table.endswith("\n")


def test_format_table_trims_trailing_spaces() -> None:
    assert plugin_view.format_table(["A", "LONG"], [["x", ""]]) == "A   LONG\nx\n"


def test_api_errors_become_sentences() -> None:
    no_crd = "the server could not find the requested resource"
    missing_crd = plugin_cluster.api_error_sentence(404, no_crd, "x")
    assert "apply crds/stripewebhooks.yaml" in missing_crd
    missing = plugin_cluster.api_error_sentence(
        404, 'stripewebhooks "a" not found', "StripeWebhook 'n/a'"
    )
    assert missing == (
        "StripeWebhook 'n/a' was not found; list them with `kubectl stripe status -A`."
    )
    assert "allowed to read and patch" in plugin_cluster.api_error_sentence(403, "forbidden", "x")


# --- unit: recover request and progress ----------------------------------------------------


def test_recover_arguments() -> None:
    args = plugin.build_parser().parse_args(
        ["recover", "my-app", "-n", "billing", "--since", "48h", "--timeout", "5m"]
    )
    assert (args.command, args.name, args.namespace, args.since) == (
        "recover",
        "my-app",
        "billing",
        "48h",
    )
    assert (args.wait, args.timeout) == (True, 300.0)
    assert (
        plugin.build_parser().parse_args(["recover", "a", "--since", "1h", "--no-wait"]).wait
        is False
    )


def test_since_is_a_duration_back_from_the_injected_clock_or_an_rfc3339_time() -> None:
    assert plugin_recovery.recovery_since("48h", NOW) == NOW - datetime.timedelta(hours=48)
    assert plugin_recovery.recovery_since("90m", NOW) == NOW - datetime.timedelta(minutes=90)
    moment = NOW - datetime.timedelta(days=2)
    assert plugin_recovery.recovery_since(rfc3339(moment), NOW) == moment
    offset = moment.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert plugin_recovery.recovery_since(offset.isoformat(), NOW) == moment
    assert plugin_recovery.recovery_since("719h", NOW) == NOW - datetime.timedelta(hours=719)


@pytest.mark.parametrize(
    ("since", "complaint"),
    [
        ("yesterday", "is neither a duration nor an RFC 3339 time; write a duration such as '48h'"),
        ("2d", "is neither a duration nor an RFC 3339 time"),
        ("2031-05-04", "is neither a duration nor an RFC 3339 time"),
        ("2031-05-04T20:00:00", "is neither a duration nor an RFC 3339 time"),
        ("0", "must be longer than 0"),
        ("720h", "is more than 719h ago and Stripe keeps events for 30 days only"),
        ("2031-05-04T22:00:00Z", "is in the future (it is now 2031-05-04T21:00:00Z)"),
        ("2031-04-01T00:00:00Z", "write at most '719h', or a time after 2031-04-04T22:00:00Z"),
    ],
)
def test_bad_since_says_what_to_write(since: str, complaint: str) -> None:
    with pytest.raises(ValueError, match="`--since`") as refused:
        plugin_recovery.recovery_since(since, NOW)
    assert complaint in str(refused.value)


def test_bad_since_exits_2_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(tmp_path / "absent")  # a connection would fail with exit 1 instead
    with pytest.raises(SystemExit) as exited:
        plugin.main(["recover", "a", "--since", "last week", "--kubeconfig", kubeconfig])
    assert exited.value.code == plugin.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: `--since` 'last week' is neither a duration nor an RFC 3339")
    assert len(err.strip().splitlines()) == 1


def test_recover_annotations_carry_the_request_id_and_the_start() -> None:
    since = NOW - datetime.timedelta(hours=48)
    assert plugin_recovery.recover_annotations("r1", since) == {
        constants.ANNOTATION_RECOVER: "r1",
        constants.ANNOTATION_RECOVER_SINCE: "2031-05-02T21:00:00Z",
    }


def gap(start: datetime.datetime, end: datetime.datetime | None = None, **fields: Any) -> dict:
    item: dict[str, Any] = {"from": rfc3339(start), "reason": "Requested", **fields}
    if end is not None:
        item["to"] = rfc3339(end)
    return item


def recovery(request: str | None = None, *conditions: dict, **fields: Any) -> Any:
    status: dict[str, Any] = {"recovery": {"request": request, **fields}}
    if conditions:
        status["conditions"] = list(conditions)
    return plugin_recovery.RecoveryProgress.from_status(status)


HOUR = datetime.timedelta(hours=1)


def test_recovery_is_done_once_handled_and_no_gap_holds_the_interval() -> None:
    since = NOW - 48 * HOUR
    assert not recovery().handled("r")
    assert not recovery("earlier").handled("r")
    handled = recovery("r", gaps=[gap(since, NOW, listed=10, answered=4)])
    assert handled.handled("r")
    assert len(handled.open_gaps(since, NOW)) == 1
    # An older gap that ended before `since`, or a newer one begun after the request, is
    # another incident: it does not hold this recovery up.
    elsewhere = recovery("r", gaps=[gap(since - 5 * HOUR, since - HOUR), gap(NOW + HOUR)])
    assert elsewhere.open_gaps(since, NOW) == []
    # A gap still open (no `to`) that began before reaches into the interval.
    still_open = recovery("r", gaps=[gap(since - 5 * HOUR, reason="DisabledByStripe")])
    assert len(still_open.open_gaps(since, NOW)) == 1
    assert recovery("r", gaps=[]).open_gaps(since, NOW) == []


def test_recovery_progress_line_counts_gaps_events_and_attempts() -> None:
    since = NOW - 48 * HOUR
    waiting = recovery("other", condition(constants.CONDITION_RECOVERED, "True", "NoOpenGaps"))
    assert waiting.describe("r", since, NOW) == (
        "waiting for the operator to take the request; Recovered True"
    )
    retrying = recovery(
        "r",
        condition(constants.CONDITION_RECOVERED, "False", "RetryingGap"),
        gaps=[
            gap(since, NOW, listed=120, answered=80, attempts=2, nextAttemptAt=rfc3339(NOW + HOUR)),
            gap(since + HOUR, reason="DisabledByStripe", listed=5, answered=5),
        ],
    )
    assert retrying.describe("r", since, NOW) == (
        "gaps open: 2 (oldest from 2031-05-02T21:00:00Z, Requested), events listed 125, "
        "answered 85, attempts 2, next attempt at 2031-05-04T22:00:00Z; "
        "Recovered False (RetryingGap)"
    )
    assert recovery("r", gaps=[]).describe("r", since, NOW) == "no gap open; Recovered <none>"


def test_lost_intervals_and_the_beyond_retention_condition_are_read() -> None:
    since = NOW - 48 * HOUR
    lost = recovery(
        "r",
        condition(constants.CONDITION_RECOVERED, "False", "BeyondRetention"),
        lost=[{"from": rfc3339(since - HOUR), "to": rfc3339(since + HOUR)}],
    )
    assert lost.beyond_retention
    (interval,) = lost.lost_between(since, NOW)
    sentence = plugin_recovery.lost_sentence("ns", "a", [interval], "")
    assert sentence.startswith(
        "Recovery of 'ns/a' done, but the events from 2031-05-02T20:00:00Z to "
        "2031-05-02T22:00:00Z were beyond Stripe's 30-day retention and cannot be recovered"
    )
    assert (
        recovery(
            "r", lost=[{"from": rfc3339(since - 9 * HOUR), "to": rfc3339(since - 8 * HOUR)}]
        ).lost_between(since, NOW)
        == []
    )


def test_done_sentence_counts_what_this_recovery_redelivered() -> None:
    since = NOW - 48 * HOUR
    start = recovery(None, eventsRecovered=7)
    end = recovery("r", eventsRecovered=19)
    assert plugin_recovery.done_sentence("ns", "a", since, start, end) == (
        "Recovery of 'ns/a' since 2031-05-02T21:00:00Z done: no gap open, "
        "12 events redelivered with a definite answer.\n"
    )


def test_status_lists_open_gaps_and_lost_intervals_below_the_table() -> None:
    since = NOW - 48 * HOUR
    with_gaps = webhook(
        "shop",
        recovery={
            "gaps": [gap(since, NOW, listed=3, answered=1, attempts=1)],
            "lost": [{"from": "2031-03-01T00:00:00Z", "to": "2031-03-02T00:00:00Z"}],
        },
        conditions=[condition(constants.CONDITION_RECOVERED, "False", "Recovering")],
    )
    row = plugin_view.status_row(with_gaps)
    assert row[-2:] == ["False (Recovering)", "1"]
    table = plugin_recovery.gaps_table([webhook("quiet"), with_gaps])
    title, header, first, second = table.strip("\n").splitlines()
    assert title == "Recovery gaps of billing/shop:"
    assert " ".join(header.split()) == "FROM TO REASON LISTED ANSWERED ATTEMPTS NEXT ATTEMPT"
    assert first.split() == [
        "2031-05-02T21:00:00Z",
        "2031-05-04T21:00:00Z",
        "Requested",
        "3",
        "1",
        "1",
        "<none>",
    ]
    assert second.split()[:2] == ["2031-03-01T00:00:00Z", "2031-03-02T00:00:00Z"]
    assert "Lost (beyond retention)" in second
    assert plugin_recovery.gaps_table([webhook("quiet")]) == ""


# --- integration: a real API server -------------------------------------------------------


def annotations(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    got = json.loads(
        kubectl("get", "-n", namespace, f"{constants.PLURAL}/{name}", "-o", "json").stdout
    )
    result: dict[str, str] = got["metadata"].get("annotations") or {}
    return result


def run_plugin(
    kube_cluster: Any, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    try:
        code = plugin.main([*argv, "--kubeconfig", str(kube_cluster.kubeconfig)])
    except SystemExit as exited:
        code = int(exited.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_rotate_sets_a_new_annotation_value_each_time(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create_webhook(kubectl, kube_namespace, "my-app")
    code, out, _ = run_plugin(kube_cluster, ["rotate", "my-app", "-n", kube_namespace], capsys)
    assert code == 0
    first = annotations(kubectl, kube_namespace, "my-app")
    assert f"{constants.ANNOTATION_ROTATE}={first[constants.ANNOTATION_ROTATE]}" in out
    assert constants.ANNOTATION_ROTATE_OVERLAP not in first

    code, _, _ = run_plugin(
        kube_cluster, ["rotate", "my-app", "-n", kube_namespace, "--overlap", "0"], capsys
    )
    assert code == 0
    second = annotations(kubectl, kube_namespace, "my-app")
    assert second[constants.ANNOTATION_ROTATE] != first[constants.ANNOTATION_ROTATE]
    assert second[constants.ANNOTATION_ROTATE_OVERLAP] == "0"

    run_plugin(kube_cluster, ["rotate", "my-app", "-n", kube_namespace], capsys)
    third = annotations(kubectl, kube_namespace, "my-app")
    assert third[constants.ANNOTATION_ROTATE] not in (
        first[constants.ANNOTATION_ROTATE],
        second[constants.ANNOTATION_ROTATE],
    )
    assert constants.ANNOTATION_ROTATE_OVERLAP not in third


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_rotate_of_a_missing_webhook_is_one_sentence_and_exit_1(
    kube_cluster: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_plugin(kube_cluster, ["rotate", "ghost", "-n", kube_namespace], capsys)
    assert code == plugin.EXIT_API_ERROR
    assert out == ""
    assert err == (
        f"error: StripeWebhook '{kube_namespace}/ghost' was not found; "
        "list them with `kubectl stripe status -A`.\n"
    )


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_rotate_wait_follows_status_until_the_new_endpoint_is_live(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str
) -> None:
    """The operator's part is played by status patches here; its own tests drive the real one.
    The plugin runs with a fixed clock: the overlap's end it reports is a day after NOW."""
    create_webhook(kubectl, kube_namespace, "waiting")
    patch_status(kubectl, kube_namespace, "waiting", {"secretVersion": 1})
    argv = ["rotate", "waiting", "-n", kube_namespace, "--wait", "--timeout", "2m"]
    args = plugin.build_parser().parse_args([*argv, "--kubeconfig", str(kube_cluster.kubeconfig)])
    lines: list[str] = []
    exit_codes: list[int] = []

    def rotate() -> None:
        exit_codes.append(asyncio.run(plugin.run(args, lines.append, now=lambda: NOW)))

    def printed() -> str:
        return "".join(lines)

    runner = threading.Thread(target=rotate, name="kubectl stripe rotate --wait", daemon=True)
    runner.start()
    try:
        wait_until(
            lambda: constants.ANNOTATION_ROTATE in annotations(kubectl, kube_namespace, "waiting"),
            timeout=30,
            what="the rotate annotation",
        )
        request = annotations(kubectl, kube_namespace, "waiting")[constants.ANNOTATION_ROTATE]
        assert request == rfc3339(NOW, microseconds=True)
        wait_until(
            lambda: "secret version 1, rotation step Idle" in printed(),
            timeout=30,
            what="the first progress line",
        )
        in_progress = {
            "secretVersion": 2,
            constants.STATUS_ROTATION_REQUEST: request,
            "conditions": [rotating("CreatingEndpoint")],
        }
        patch_status(kubectl, kube_namespace, "waiting", in_progress)
        wait_until(
            lambda: "secret version 2, rotation step CreatingEndpoint" in printed(),
            timeout=30,
            what="the in-progress line",
        )
        assert runner.is_alive()
        overlap_ends = rfc3339(NOW + datetime.timedelta(days=1))
        patch_status(
            kubectl,
            kube_namespace,
            "waiting",
            {
                "previousSecretExpiresAt": overlap_ends,
                "conditions": [rotating(constants.ROTATION_STEP_OVERLAP)],
            },
        )
    finally:
        runner.join(timeout=30)
    assert exit_codes == [plugin.EXIT_OK]
    assert (
        f"Rotation of '{kube_namespace}/waiting' done: secret version 2 is live; "
        f"the previous secret is accepted until {overlap_ends}." in printed()
    )


@pytest.mark.integration
def test_rotate_wait_with_the_real_operator_and_stripe_emulator(
    scene: Scene, kube_cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop", rotation={"overlap": "1h"}))

    def status() -> dict[str, Any]:
        result: dict[str, Any] = (
            get_json(scene.kubectl, constants.PLURAL, "shop", "-n", scene.namespace).get("status")
            or {}
        )
        return result

    poll("the first endpoint", lambda: status().get("secretVersion") == 1, timeout=60)
    rotate = ["rotate", "shop", "-n", scene.namespace, "--wait", "--timeout", "90s"]
    code, out, err = run_plugin(kube_cluster, rotate, capsys)
    assert code == 0, err
    assert status()["secretVersion"] == 2
    assert plugin_view.rotation_step(status()["conditions"]) == constants.ROTATION_STEP_OVERLAP
    assert "secret version 2 is live; the previous secret is accepted until" in out
    assert len(scene.endpoints()) == 2

    # Emergency: the running overlap is cut short and the old secret dropped at once.
    code, out, err = run_plugin(kube_cluster, [*rotate, "--overlap", "0"], capsys)
    assert code == 0, err
    assert "secret version 3 is live; the previous secret is no longer accepted" in out
    poll("the old endpoints gone", lambda: len(scene.endpoints()) == 1, timeout=60)
    (endpoint,) = scene.endpoints()
    assert endpoint.id == status()["endpointId"]


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_rotate_wait_times_out_with_exit_3_while_another_request_is_served(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create_webhook(kubectl, kube_namespace, "queued")
    patch_status(
        kubectl,
        kube_namespace,
        "queued",
        {
            "secretVersion": 1,
            constants.STATUS_ROTATION_REQUEST: "earlier",
            "conditions": [rotating("WaitingForPropagation")],
        },
    )
    code, out, err = run_plugin(
        kube_cluster,
        ["rotate", "queued", "-n", kube_namespace, "--wait", "--timeout", "1500ms"],
        capsys,
    )
    assert code == plugin.EXIT_TIMEOUT
    assert "secret version 1, rotation step WaitingForPropagation" in out
    assert err.startswith("error: Timed out waiting for the rotation")
    assert "still at step WaitingForPropagation" in err


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_status_prints_what_the_status_subresource_holds(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create_webhook(kubectl, kube_namespace, "shown")
    create_webhook(kubectl, kube_namespace, "fresh")
    patch_status(
        kubectl,
        kube_namespace,
        "shown",
        {
            "endpointId": "we_shown",
            "stripeStatus": "enabled",
            "secretVersion": 4,
            "lastRotationTime": "2026-11-27T20:00:00Z",
            "previousSecretExpiresAt": "2026-11-28T20:00:00Z",
            "conditions": [
                {
                    **condition("Ready", "False", "ApiKeyMissing"),
                    "lastTransitionTime": "2026-11-27T20:00:00Z",
                },
                {**condition("Synced", "True"), "lastTransitionTime": "2026-11-27T20:00:00Z"},
            ],
        },
    )
    code, out, _ = run_plugin(kube_cluster, ["status", "-n", kube_namespace], capsys)
    assert code == 0
    header, fresh, shown = out.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    assert fresh.split() == [kube_namespace, "fresh"] + ["<none>"] * 11
    assert shown.split() == [
        kube_namespace,
        "shown",
        "we_shown",
        "enabled",
        "4",
        "2026-11-27T20:00:00Z",
        "2026-11-28T20:00:00Z",
        "False",
        "(ApiKeyMissing)",
        "True",
        "<none>",
        "<none>",
        "<none>",
        "<none>",
    ]
    code, out, _ = run_plugin(kube_cluster, ["status", "-A"], capsys)
    assert code == 0
    assert f"{kube_namespace}   shown" in out
    code, out, _ = run_plugin(kube_cluster, ["status", "shown", "-n", kube_namespace], capsys)
    assert len(out.splitlines()) == 2


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_kubectl_finds_the_plugin_on_path(
    kubectl: Kubectl, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    listed = kubectl("plugin", "list").stdout
    assert str(VENV_BIN / "kubectl-stripe") in listed
    create_webhook(kubectl, kube_namespace, "found")

    rotated = kubectl("stripe", "rotate", "found", "-n", kube_namespace)
    assert "Requested rotation of StripeWebhook" in rotated.stdout
    assert constants.ANNOTATION_ROTATE in annotations(kubectl, kube_namespace, "found")

    status = kubectl("stripe", "status", "-n", kube_namespace)
    assert status.stdout.splitlines()[1].split()[:2] == [kube_namespace, "found"]

    refused = kubectl("stripe", "rotate", "ghost", "-n", kube_namespace, check=False)
    assert refused.returncode == plugin.EXIT_API_ERROR
    assert "Traceback" not in refused.stderr


class PluginThread:
    """`kubectl stripe ARGV` run in-process in a thread with the fixed clock NOW, so a test
    can play the operator's part meanwhile; `lines` is what it printed, `result` its exit
    code and error sentence once it ended."""

    def __init__(self, kube_cluster: Any, argv: list[str]) -> None:
        self.args = plugin.build_parser().parse_args(
            [*argv, "--kubeconfig", str(kube_cluster.kubeconfig)]
        )
        self.lines: list[str] = []
        self.result: list[tuple[int, str]] = []
        self.thread = threading.Thread(target=self._run, name="kubectl stripe", daemon=True)

    def _run(self) -> None:
        try:
            code = asyncio.run(plugin.run(self.args, self.lines.append, now=lambda: NOW))
            self.result.append((code, ""))
        except plugin.PluginError as exc:
            self.result.append((exc.exit_code, str(exc)))

    def start(self) -> PluginThread:
        self.thread.start()
        return self

    def printed(self) -> str:
        return "".join(self.lines)

    def join(self) -> tuple[int, str]:
        self.thread.join(timeout=30)
        assert self.result, "the plugin did not finish"
        return self.result[0]


def recover_request(kubectl: Kubectl, namespace: str, name: str) -> str:
    wait_until(
        lambda: constants.ANNOTATION_RECOVER in annotations(kubectl, namespace, name),
        timeout=30,
        what="the recover annotation",
    )
    return annotations(kubectl, namespace, name)[constants.ANNOTATION_RECOVER]


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_recover_follows_status_until_the_requested_gap_closes(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str
) -> None:
    """The operator's part is played by status patches; tests/recovery drives the real one."""
    create_webhook(kubectl, kube_namespace, "restored")
    patch_status(kubectl, kube_namespace, "restored", {"recovery": {"eventsRecovered": 5}})
    argv = ["recover", "restored", "-n", kube_namespace, "--since", "48h", "--timeout", "2m"]
    follow = PluginThread(kube_cluster, argv).start()
    try:
        request = recover_request(kubectl, kube_namespace, "restored")
        assert request == rfc3339(NOW, microseconds=True)
        since = rfc3339(NOW - 48 * HOUR)
        got = annotations(kubectl, kube_namespace, "restored")
        assert got[constants.ANNOTATION_RECOVER_SINCE] == since
        wait_until(
            lambda: "waiting for the operator to take the request" in follow.printed(),
            timeout=30,
            what="the first progress line",
        )
        working = {
            "request": request,
            "eventsRecovered": 5,
            "gaps": [
                {
                    "from": since,
                    "to": rfc3339(NOW),
                    "reason": "Requested",
                    "listed": 40,
                    "answered": 12,
                    "attempts": 0,
                }
            ],
        }
        patch_status(kubectl, kube_namespace, "restored", {"recovery": working})
        wait_until(
            lambda: "gaps open: 1 (oldest from " + since in follow.printed(),
            timeout=30,
            what="the in-progress line",
        )
        assert "events listed 40, answered 12, attempts 0" in follow.printed()
        assert follow.thread.is_alive()
        done = {"request": request, "eventsRecovered": 45, "gaps": []}
        patch_status(kubectl, kube_namespace, "restored", {"recovery": done})
    finally:
        code, error = follow.join()
    assert (code, error) == (plugin.EXIT_OK, "")
    assert (
        f"Recovery of '{kube_namespace}/restored' since {since} done: no gap open, "
        "40 events redelivered with a definite answer." in follow.printed()
    )
    # A second request gets a new id: the operator handles each value once.
    again = PluginThread(kube_cluster, [*argv[:-2], "--no-wait"]).start()
    assert again.join() == (plugin.EXIT_OK, "")
    assert recover_request(kubectl, kube_namespace, "restored") != request


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_recover_reaching_beyond_retention_exits_4_with_the_lost_interval(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str
) -> None:
    create_webhook(kubectl, kube_namespace, "old")
    argv = ["recover", "old", "-n", kube_namespace, "--since", "719h", "--timeout", "2m"]
    follow = PluginThread(kube_cluster, argv).start()
    try:
        request = recover_request(kubectl, kube_namespace, "old")
        lost = {"from": rfc3339(NOW - 719 * HOUR), "to": rfc3339(NOW - 719 * HOUR + HOUR / 60)}
        message = f"Events from {lost['from']} to {lost['to']} are beyond Stripe's retention."
        patch_status(
            kubectl,
            kube_namespace,
            "old",
            {
                "recovery": {"request": request, "gaps": [], "lost": [lost]},
                "conditions": [
                    {
                        **condition(constants.CONDITION_RECOVERED, "False", "BeyondRetention"),
                        "message": message,
                        "lastTransitionTime": rfc3339(NOW),
                    }
                ],
            },
        )
    finally:
        code, error = follow.join()
    assert code == plugin.EXIT_BEYOND_RETENTION
    assert error.startswith(
        f"Recovery of '{kube_namespace}/old' done, but the events from {lost['from']} to "
        f"{lost['to']} were beyond Stripe's 30-day retention and cannot be recovered"
    )


@pytest.mark.integration
@pytest.mark.usefixtures("stripewebhook_crd")
def test_recover_times_out_with_exit_3_when_no_operator_takes_the_request(
    kube_cluster: Any, kubectl: Kubectl, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create_webhook(kubectl, kube_namespace, "unattended")
    code, out, err = run_plugin(
        kube_cluster,
        ["recover", "unattended", "-n", kube_namespace, "--since", "1h", "--timeout", "1500ms"],
        capsys,
    )
    assert code == plugin.EXIT_TIMEOUT
    assert "Requested recovery of StripeWebhook" in out
    assert "waiting for the operator to take the request" in out
    assert err.startswith(
        f"error: Timed out waiting for the operator to take the recovery request of "
        f"'{kube_namespace}/unattended'"
    )
