"""What the tests of deploy/ share: the dashboard's model, its panels and its queries as PromQL.

``promql`` is tools/dashboard_image.py's (the script that draws the dashboard
for the docs sends Prometheus the same queries), loaded from its file.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "interlink.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def _tool() -> ModuleType:
    name = "dashboard_image"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before it runs: its dataclasses look themselves up there
        spec.loader.exec_module(module)
    return sys.modules[name]


dashboard_image = _tool()


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = dashboard_image.load_dashboard(DASHBOARD)
    return loaded


def panels() -> list[dict[str, Any]]:
    """The dashboard's panels, rows left out."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def variables() -> list[dict[str, Any]]:
    """The dashboard's template variables (``job``, ``client``, ``source``, ``queue``)."""
    found: list[dict[str, Any]] = dashboard()["templating"]["list"]
    return found


@functools.cache
def _variable_names() -> tuple[str, ...]:
    """Read once: ``promql`` runs for every panel, and the file does not change under a test."""
    return tuple(dashboard_image.variable_names(dashboard()))


def promql(expr: str, rate_interval: str) -> str:
    """A panel's or a variable's query as Grafana sends it, every variable at "All"."""
    query: str = dashboard_image.promql(expr, rate_interval, _variable_names())
    return query


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules of ``deploy/prometheus/alerts.yml``, every group's."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]
