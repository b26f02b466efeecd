"""Read the committed dashboards: every panel query and variable, and substitute variables for a test.

Standard library only, so an end-to-end test can run each dashboard query against a real Prometheus
without the SDK::

    import sys; sys.path.insert(0, "grafana")
    from benchd_dashboards.panel_queries import load_dashboards, panel_queries, render_expr
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboards"

BUILTIN_DEFAULTS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
}
"""Values for Grafana's built-in variables when rendering a query outside Grafana."""


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel."""

    dashboard_uid: str
    panel_title: str
    panel_type: str
    ref_id: str
    expr: str
    instant: bool


@dataclass(frozen=True)
class Variable:
    """A dashboard variable: its name, PromQL query (``label_values(...)``) and whether All/multi apply."""

    dashboard_uid: str
    name: str
    query: str
    include_all: bool
    all_value: str | None


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict]:
    """Load every committed dashboard JSON, keyed by file stem (``overview``, ``model``, ``daemon``)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def _panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def panel_queries(dashboard: dict) -> list[PanelQuery]:
    """Every Prometheus target of every panel (rows skipped)."""
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append(
                    PanelQuery(
                        dashboard["uid"],
                        panel.get("title", ""),
                        panel.get("type", ""),
                        target.get("refId", ""),
                        target["expr"],
                        bool(target.get("instant")),
                    )
                )
    return found  # fmt: skip


def annotation_queries(dashboard: dict) -> list[PanelQuery]:
    """Every Prometheus annotation query (``panel_title`` is the annotation's name, ``ref_id`` empty)."""
    return [
        PanelQuery(dashboard["uid"], a.get("name", ""), "annotation", "", a["expr"], False)
        for a in dashboard.get("annotations", {}).get("list", [])
        if a.get("expr")
    ]


def dashboard_variables(dashboard: dict) -> list[Variable]:
    """The dashboard's query variables, in order."""
    found = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"] if isinstance(var["query"], str) else var["query"].get("query", "")
            found.append(
                Variable(
                    dashboard["uid"], var["name"], query, bool(var.get("includeAll")), var.get("allValue")
                )
            )
    return found  # fmt: skip


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def render_expr(expr: str, values: Mapping[str, str], builtins: Mapping[str, str] | None = None) -> str:
    """Substitute ``$name`` / ``${name}`` variables and Grafana built-ins into a query.

    Raises:
        KeyError: a variable has no value.
    """
    table = {**BUILTIN_DEFAULTS, **(builtins or {}), **values}

    def replace(match: re.Match[str]) -> str:
        return table[match.group(1) or match.group(2)]

    return _VAR.sub(replace, expr)


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)


def label_values_query(variable_query: str) -> tuple[str | None, str]:
    """Split ``label_values(selector, label)`` into (selector or None, label).

    Raises:
        ValueError: the query is not a ``label_values`` query.
    """
    match = _LABEL_VALUES.match(variable_query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {variable_query!r}")
    return match.group("selector"), match.group("label")
