"""tools/dashboard_image.py: the picture of the dashboard in docs/observability.md.

The script's run (Prometheus scraping ``interlink demo``) is what the docs'
image comes from; here its parts are checked without it: the queries it
sends, the legends, and a drawing of every panel from made-up answers.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from tests.observability.deploy_support import dashboard, dashboard_image, panels, variables


def test_the_queries_are_sent_as_grafana_sends_them_with_all_selected() -> None:
    names = [variable["name"] for variable in variables()]
    expr = 'sum by (queue) (rate(m{job=~"$job", queue=~"$queue"}[$__rate_interval]))'
    assert dashboard_image.promql(expr, "15s", names) == (
        'sum by (queue) (rate(m{job=~".*", queue=~".*"}[15s]))'
    )
    variable = 'label_values(interlink_client_calls_total{job=~"$job"}, client)'
    assert dashboard_image.promql(variable, "15s", names) == (
        'group by (client) (interlink_client_calls_total{job=~".*"})'
    )
    with pytest.raises(ValueError, match=r"\$tenant"):
        dashboard_image.promql('m{tenant=~"$tenant"}', "15s", names)


def test_a_legend_takes_each_label_of_its_series() -> None:
    labels = {"client": "provider", "status_class": "5xx"}
    assert dashboard_image.legend("{{client}} {{status_class}}", labels) == "provider 5xx"
    assert dashboard_image.legend("{{client}} p99", labels) == "provider p99"


def test_every_panel_is_drawn_and_those_without_data_say_so(tmp_path: Path) -> None:
    found = panels()
    start = 1_700_000_000.0
    answers = {}
    for n, panel in enumerate(found):
        if n % 5 == 4:
            continue  # no series: "No data"
        points = [(start + t, 1 + math.sin(t / 5) + n) for t in range(60)]
        if n % 5 == 3:
            points = [(t, math.nan) for t, _ in points]  # a quantile of nothing: NaN only
        answers[panel["id"]] = [dashboard_image.Series(f"{panel['title']} line", points)]
    out = tmp_path / "images" / "dashboard.png"
    blank = dashboard_image.render(dashboard(), answers, out, "a test", (start, start + 60))
    assert blank == [panel["title"] for n, panel in enumerate(found) if n % 5 in (3, 4)]
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width == 1800
    grid_rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard()["panels"])
    assert height == grid_rows * 30 + 60  # Grafana's 30 px grid rows, and the title bar
