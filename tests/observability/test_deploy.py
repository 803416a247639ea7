"""deploy/: the Grafana dashboard and the Prometheus alerts name only metrics the service emits.

``promtool`` (Debian's ``prometheus`` package) checks the alert rules, runs
their unit tests (``alerts_test.yml``: when each alert fires, with which
labels and text), and checks the dashboard's expressions as rules too, when
it is installed (``.ci/run`` tries to install it); without it those three
tests skip with the reason: the metric names are still checked against a
live scrape.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml

from interlink.observability._lean import LeanTracerProvider
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.observability.deploy_support import (
    ALERTS,
    ROOT,
    alert_rules,
    dashboard,
    panels,
    promql,
    variables,
)
from tests.observability.metrics_support import scripted_run, write_config

ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
METRIC = re.compile(r"\binterlink_[a-z0-9_]+")


def dashboard_exprs() -> list[str]:
    exprs = [target["expr"] for panel in panels() for target in panel["targets"]]
    exprs.extend(variable["query"]["query"] for variable in variables())
    return exprs


def referenced() -> dict[str, set[str]]:
    """Each metric name an expression names, with where it is named."""
    found: dict[str, set[str]] = {}
    for expr in dashboard_exprs():
        for name in METRIC.findall(expr):
            found.setdefault(name, set()).add("dashboard")
    for rule in alert_rules():
        for name in METRIC.findall(rule["expr"]):
            found.setdefault(name, set()).add(f"alert {rule['alert']}")
    return found


def test_the_dashboard_is_a_grafana_model_with_a_prometheus_input() -> None:
    model = dashboard()
    (source,) = model["__inputs"]
    assert source["name"] == "DS_PROMETHEUS"
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    assert model["uid"] == "interlink-overview"
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    for variable in model["templating"]["list"]:
        assert variable["datasource"]["uid"] == "${DS_PROMETHEUS}"
    # What the issue asks the dashboard to show.
    names = set(referenced())
    for wanted in (
        "interlink_client_request_duration_seconds_count",  # traffic and errors per client
        "interlink_client_request_duration_seconds_bucket",  # latency per client
        "interlink_client_breaker_state",
        "interlink_webhooks_received_total",
        "interlink_webhook_request_duration_seconds_bucket",  # answer time per source
        "interlink_queue_messages",
        "interlink_queue_oldest_message_age_seconds",
        "interlink_queue_dead_letters",
        "interlink_transform_failures_total",
        "interlink_client_quota_remaining",
        "interlink_client_quota_limit",
        "interlink_tracing_spans_total",  # lost traces, beside their alert
    ):
        assert wanted in names, wanted


def test_the_duration_panels_ask_for_exemplars_once() -> None:
    """The served histograms carry exemplars (OpenMetrics): the p99 queries show them, linked."""
    with_exemplars = {
        panel["title"]: [t["expr"] for t in panel["targets"] if t.get("exemplar")]
        for panel in panels()
        if any("_duration_seconds_bucket" in t["expr"] for t in panel["targets"])
    }
    assert len(with_exemplars) == 3, with_exemplars
    for title, exprs in with_exemplars.items():
        assert len(exprs) == 1, title  # once: each query would show the same points again
        assert exprs[0].startswith("histogram_quantile(0.99"), title


def test_the_broker_gauges_are_not_added_up_across_processes() -> None:
    """Each process reports the broker's queue figures: summed, two processes would double them."""
    broker_gauges = (
        "interlink_queue_messages",
        "interlink_queue_oldest_message_age_seconds",
        "interlink_queue_dead_letters",
    )
    panel_exprs = [target["expr"] for panel in panels() for target in panel["targets"]]
    naming = [expr for expr in panel_exprs if any(name in expr for name in broker_gauges)]
    assert len(naming) == len(broker_gauges)  # one panel each
    for expr in naming:
        assert expr.startswith("max by (queue"), expr


def test_the_alerts_cover_what_the_issue_asks() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == {
        "InterlinkCircuitBreakerOpen",
        "InterlinkDeadLettersGrowing",
        "InterlinkWebhookSignatureRejectionsSpiking",
        "InterlinkWebhooksNotStored",
        "InterlinkWebhooksSlow",
        "InterlinkOldestMessageTooOld",
        "InterlinkQueueFiguresUnreadable",
        "InterlinkTracesLost",
        "InterlinkUpstreamQuotaNearlyExhausted",
    }
    assert rules["InterlinkCircuitBreakerOpen"]["for"] == "5m"
    assert "interlink_client_breaker_state" in rules["InterlinkCircuitBreakerOpen"]["expr"]
    assert "interlink_queue_dead_letters" in rules["InterlinkDeadLettersGrowing"]["expr"]
    assert 'outcome="rejected"' in rules["InterlinkWebhookSignatureRejectionsSpiking"]["expr"]
    assert 'outcome="unavailable"' in rules["InterlinkWebhooksNotStored"]["expr"]
    assert "interlink_webhook_request_duration_seconds" in rules["InterlinkWebhooksSlow"]["expr"]
    assert "interlink_queue_stats_errors_total" in rules["InterlinkQueueFiguresUnreadable"]["expr"]
    assert "interlink_tracing_spans_total" in rules["InterlinkTracesLost"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


async def test_every_metric_the_dashboard_and_alerts_name_is_served(
    tmp_path: Path, lean_provider: LeanTracerProvider
) -> None:
    async with FakeUpstream() as upstream:
        config = load_config(write_config(tmp_path, upstream.url))
        async with Service(config) as service, aiohttp.ClientSession() as session:
            found = await scripted_run(service, upstream, session)
            async with session.get(f"{service.url}/metrics") as response:
                text = await response.text()
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            declared.update(
                {
                    "counter": {f"{base}_total"},
                    "histogram": {f"{name}_bucket", f"{name}_count", f"{name}_sum"},
                }.get(kind, {name})
            )
    with_samples = {name for name, _ in found}
    wanted = referenced()
    missing = {name: where for name, where in wanted.items() if name not in declared}
    assert not missing, f"named by deploy/ but not served by /metrics: {missing}"
    # The scripted run exercises every one of them, so each has a series too.
    silent = {name: where for name, where in wanted.items() if name not in with_samples}
    assert not silent, f"served with no series after the scripted run: {silent}"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (apt-get install prometheus)"
        pytest.skip(reason)
    return found


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    """promtool's unit tests of the rules (deploy/prometheus/alerts_test.yml), every alert in it."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    tested = {case["alertname"] for group in tests["tests"] for case in group["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in alert_rules()}
    result = subprocess.run(
        [promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    rules = []
    for n, expr in enumerate(dashboard_exprs()):
        rules.append({"record": f"dashboard:expr_{n}", "expr": promql(expr, "5m")})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
