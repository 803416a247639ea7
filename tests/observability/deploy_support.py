"""What the tests of deploy/ share: the dashboard's model, its panels and its queries as PromQL.

Grafana fills in its variables before it sends a panel's query; Prometheus
and promtool take PromQL only, so ``promql`` does what Grafana does with
every variable at *All* (the dashboard's ``allValue`` is ``.*``) and
``$__rate_interval`` at the window given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "interlink.json"
ALL = ".*"  # each variable's allValue: what Grafana sends for "All"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    """The dashboard's panels, rows left out."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def variables() -> list[dict[str, Any]]:
    """The dashboard's template variables (``job``, ``client``, ``source``, ``queue``)."""
    found: list[dict[str, Any]] = dashboard()["templating"]["list"]
    return found


def promql(expr: str, rate_interval: str) -> str:
    """A panel's or a variable's query as Prometheus gets it from Grafana, every variable "All".

    A variable's ``label_values(selector, label)`` (Grafana's, not PromQL)
    becomes the ``group by (label) (selector)`` it stands for.
    """
    if expr.startswith("label_values("):
        selector, label = expr.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
        expr = f"group by ({label.strip()}) ({selector})"
    expr = expr.replace("$__rate_interval", rate_interval)
    for variable in variables():
        expr = expr.replace(f"${variable['name']}", ALL)
    assert "$" not in expr, f"a Grafana variable left in {expr!r}"
    return expr
