"""The Grafana dashboard's queries as plain PromQL (Grafana variables given values), so they can
be checked against a real Prometheus (tests) and plotted from one (benchmarks/operations.py),
Grafana itself not being installable here."""

from __future__ import annotations

import json
import re
from pathlib import Path

# Concrete values for the Grafana variables the dashboard's queries use ("All" is ".*").
VARIABLES = {"__rate_interval": "1m", "instance": ".*", "model": ".*"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.+),\s*\w+\s*\)\s*$", re.S)


def substitute(expr: str, variables: dict[str, str] = VARIABLES) -> str:
    """``expr`` with Grafana's $name / ${name} variables replaced; an unknown one is an error."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def dashboard_queries(
    dashboard_file: Path, variables: dict[str, str] = VARIABLES
) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard, variables substituted; the
    template variables' label_values(SELECTOR, label) queries come first as their SELECTOR,
    titled "variable NAME"."""
    dashboard = json.loads(dashboard_file.read_text())
    queries = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            if match is None:
                raise ValueError(f"variable {variable['name']}: not label_values(SELECTOR, label)")
            queries.append((f"variable {variable['name']}", substitute(match[1], variables)))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], substitute(target["expr"], variables)))
    return queries
