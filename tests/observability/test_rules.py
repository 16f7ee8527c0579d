"""The chart's alerting rules: valid for Prometheus's own `promtool`, unit-tested alert by alert
(each fires on its failing series and stays silent on the healthy one), each with a runbook
section in docs/troubleshooting.md, and querying only metrics the programs export (or naming
why one is not exported yet)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.processes import REPO_ROOT
from devstack.services.scrape_config import RULES_FILE
from tests.observability.exports import (
    exported_series,
    named_metrics,
    operator_exposition,
    receiver_exposition,
)

UNIT_TESTS = Path(__file__).parent / "rules-test.yaml"
TROUBLESHOOTING = REPO_ROOT / "docs" / "troubleshooting.md"
RUNBOOKS = (
    "https://github.com/stripe-webhook-operator/stripe-webhook-operator/blob/main/"
    "docs/troubleshooting.md#"
)
SEVERITIES = {"warning", "critical"}
# Metrics the rules alert on that the programs do not export yet, each with the reason. A name
# leaves this list as soon as it is exported (a test below insists).
AWAITED: dict[str, str] = {}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool; fail, saying how to install it, when it is missing."""
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed; run `make system-packages` (Debian's prometheus)."
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT
    )


def alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def unit_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    return tests


def anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, spaces to hyphens, other
    punctuation dropped."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(markdown: str) -> set[str]:
    return {anchor(line.lstrip("#")) for line in markdown.splitlines() if line.startswith("#")}


def test_rules_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_load_the_chart_rules_file() -> None:
    files = yaml.safe_load(UNIT_TESTS.read_text())["rule_files"]
    assert [(UNIT_TESTS.parent / name).resolve() for name in files] == [RULES_FILE.resolve()]


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alerts()])
def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_is_silent(
    alert: str,
) -> None:
    cases = [
        case
        for test in unit_tests()
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case["exp_alerts"] for case in cases), f"{alert} is never expected to fire"
    assert any(not case["exp_alerts"] for case in cases), f"{alert} is never expected silent"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_links_its_runbook_section(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    assert url == RUNBOOKS + rule["alert"].lower()
    assert url.removeprefix(RUNBOOKS) in headings(TROUBLESHOOTING.read_text())


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_says_how_bad_and_what_happened(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("StripeWebhook")
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].endswith(".")
    assert rule["annotations"]["description"].strip()


def test_every_runbook_section_belongs_to_an_alert() -> None:
    text = TROUBLESHOOTING.read_text()
    documented = {
        line.removeprefix("### ").strip()
        for line in text.split("\n## Alerts", 1)[1].splitlines()
        if line.startswith("### StripeWebhook")
    }
    assert documented == {rule["alert"] for rule in alerts()}


def rules_metrics(prefix: str) -> set[str]:
    return named_metrics([str(rule["expr"]) for rule in alerts()], prefix)


@pytest.mark.integration
def test_every_receiver_metric_the_rules_query_is_exported(tmp_path: Path) -> None:
    exported = exported_series(receiver_exposition(tmp_path))
    wanted = rules_metrics("stripe_webhook_receiver_")
    assert wanted, "the rules query no receiver metric"
    assert wanted - set(AWAITED) <= exported, wanted - set(AWAITED) - exported


@pytest.mark.integration
def test_every_operator_metric_the_rules_query_is_exported_or_awaited(
    kube_cluster: Cluster, kubectl: Kubectl, kube_namespace: str, tmp_path: Path
) -> None:
    exposition = operator_exposition(kube_cluster, kubectl, kube_namespace, tmp_path, "rules")
    exported = exported_series(exposition)
    wanted = rules_metrics("stripe_webhook_operator_")
    assert wanted, "the rules query no operator metric"
    assert wanted - set(AWAITED) <= exported, wanted - set(AWAITED) - exported
    assert set(AWAITED) <= wanted, "AWAITED names a metric no rule queries any more"
    for name, reason in AWAITED.items():
        assert name not in exported, f"{name} is exported now ({reason}); drop it from AWAITED"
