"""The chart's Grafana dashboard as Grafana queries Prometheus with it: every panel's PromQL
with the dashboard's variables substituted as Grafana substitutes them for a time range, and
evaluated over that range through Prometheus's HTTP API.

tests/observability evaluates it after a journey of the operator and the receiver as local
processes, tests/node after one of the chart's Pods on the node; tests/docs reads the same
panels for the metric names they query.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from devstack.processes import StackError
from devstack.services.prometheus import PrometheusServer
from devstack.services.scrape_config import CHART_DIR

DASHBOARD = CHART_DIR / "dashboards" / "stripe-webhook.json"
# Grafana sizes $__interval as the time range over the panel's points, never below the data
# source's scrape interval; a panel about 1,000 points wide.
MAX_DATA_POINTS = 1000
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def dashboard() -> dict[str, Any]:
    """The dashboard JSON the chart ships."""
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Query:
    """One query of a panel, as Grafana sends it: its text with the variables substituted."""

    panel: str
    legend: str
    expr: str

    @property
    def key(self) -> tuple[str, str]:
        """(panel title, legend): what names a query in a test's table of exceptions."""
        return self.panel, self.legend


def grafana_variables(
    board: dict[str, Any], range_seconds: float, scrape_seconds: float
) -> dict[str, str]:
    """The values Grafana gives the dashboard's variables over a time range with a data source
    scraped every `scrape_seconds`: `All` for each query variable (its `allValue`), and the
    built-in intervals."""
    scrape = math.ceil(scrape_seconds)
    interval = max(scrape, math.ceil(range_seconds / MAX_DATA_POINTS))
    values = {
        "__interval": f"{interval}s",
        # Grafana's definition: at least four scrape intervals, and one more than $__interval.
        "__rate_interval": f"{max(interval + scrape, 4 * scrape)}s",
    }
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        if variable["current"].get("value") != "$__all":
            raise StackError(
                f"Dashboard variable `{variable['name']}` does not default to All; set its "
                "`current` to `$__all` so that a new user sees every webhook."
            )
        values[variable["name"]] = variable["allValue"]
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace `$name` and `${name}` as Grafana does; refuse a variable it would not know."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise StackError(
                f"The dashboard query `{expr}` names `${name}`, which is no variable of the "
                "dashboard; define it under `templating` or remove it."
            )
        return values[name]

    return VARIABLE.sub(value, expr)


def dashboard_queries(range_seconds: float, scrape_seconds: float) -> list[Query]:
    """Every panel query of the dashboard as Grafana sends it for a time range."""
    board = dashboard()
    values = grafana_variables(board, range_seconds, scrape_seconds)
    return [
        Query(panel["title"], target.get("legendFormat", ""), substitute(target["expr"], values))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def samples(series: Sequence[dict[str, Any]]) -> list[float]:
    """The finite values of a range query's series: what Grafana would draw."""
    values = [float(value) for item in series for _, value in item["values"]]
    return [value for value in values if math.isfinite(value)]


@dataclass(frozen=True)
class Evaluated:
    """A panel query evaluated over a time range: the series Prometheus returned."""

    query: Query
    series: list[dict[str, Any]]

    @property
    def samples(self) -> list[float]:
        return samples(self.series)

    def legend_labels_missing(self) -> list[str]:
        """Labels the legend shows (`{{name}}`) that some returned series does not carry."""
        return [
            label
            for label in LEGEND_LABEL.findall(self.query.legend)
            if not all(label in item["metric"] for item in self.series)
        ]

    def describe(self) -> str:
        return f"{self.query.panel} / {self.query.legend}: {self.query.expr}"


def evaluate(
    server: PrometheusServer, began: float, end: float, scrape_seconds: float
) -> list[Evaluated]:
    """Evaluate every panel query from `began` to `end` (Unix seconds), one point per scrape,
    as Grafana would draw the dashboard over that range."""
    return [
        Evaluated(query, server.query_range(query.expr, began, end, scrape_seconds))
        for query in dashboard_queries(end - began, scrape_seconds)
    ]
