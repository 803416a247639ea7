"""Draw deploy/grafana/interlink.json as a PNG, from what Prometheus scraped off `interlink demo`.

docs/observability.md shows the dashboard as a picture. Grafana itself is not
on PyPI, Debian or npm, so the picture is drawn here, with matplotlib (written
by hand only because no package renders a Grafana model without Grafana): the
dashboard's own panels (layout, titles, units, legends, the breakers' table)
and its own queries, sent as Grafana sends them with every variable at *All*
(``promql``), answered by a real Prometheus (Debian's ``prometheus`` package)
that scraped a run of ``interlink demo --listen`` each second. Colours and
fonts follow Grafana's dark theme loosely; the data is exactly what the
queries return.

Run from the checkout (about a minute and a half)::

    .venv/bin/python tools/dashboard_image.py            # docs/images/dashboard.png
    .venv/bin/python tools/dashboard_image.py --duration 90 --out /tmp/dashboard.png

tests/observability/test_dashboard_image.py draws a made-up answer to every
panel and tests/observability/deploy_support.py uses ``promql``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "interlink.json"
EXAMPLE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
OUT = ROOT / "docs" / "images" / "dashboard.png"
ALL = ".*"  # each variable's allValue: what Grafana sends for "All"
# Grafana's $__rate_interval is max(4 x scrape interval, step + scrape interval); at a
# one-second scrape that is 4 s, too jumpy to read, so the picture uses a 15 s window.
RATE_INTERVAL = "15s"

# Grafana's dark theme, loosely.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
FAINT = "#8e8e8e"
PALETTE = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(path.read_text())
    return model


def promql(expr: str, rate_interval: str, variables: Sequence[str]) -> str:
    """A panel's or a variable's query as Grafana sends it to Prometheus, each variable "All".

    ``variables``: the dashboard's variable names. A variable's
    ``label_values(selector, label)`` (Grafana's, not PromQL) becomes the
    ``group by (label) (selector)`` it stands for.
    """
    if expr.startswith("label_values("):
        selector, label = expr.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
        expr = f"group by ({label.strip()}) ({selector})"
    expr = expr.replace("$__rate_interval", rate_interval)
    for name in variables:
        expr = expr.replace(f"${name}", ALL)
    if "$" in expr:
        raise ValueError(f"a Grafana variable the dashboard does not declare is left in {expr!r}")
    return expr


def variable_names(model: dict[str, Any]) -> list[str]:
    return [variable["name"] for variable in model["templating"]["list"]]


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's ``legendFormat``: each ``{{label}}`` replaced by the series' value of it."""
    text = template
    for name, value in labels.items():
        text = text.replace("{{" + name + "}}", value)
    return text


@dataclass
class Series:
    """One line of a panel: its legend and its points (unix seconds, value)."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)


Answers = dict[int, list[Series]]
"""Each panel's series, by panel id (a table's: one point each, its value now)."""


# -- asking Prometheus -----------------------------------------------------------------------


def scrape_config(processes: dict[str, str], rules: Path | None = None) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml scraping ``processes`` each second, loading ``rules``.

    ``processes``: a URL by the example's ``process`` label (``serve``,
    ``worker``); the example's targets of the others are left out.
    """
    import yaml

    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [] if rules is None else [str(rules)]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [
        {**group, "targets": [processes[group["labels"]["process"]].removeprefix("http://")]}
        for group in job["static_configs"]
        if group["labels"]["process"] in processes
    ]
    return config


def ask(prometheus: str, path: str, **params: str) -> list[dict[str, Any]]:
    """One Prometheus API call's ``data.result``."""
    url = f"{prometheus}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {params.get('query')!r}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def last_scraped(prometheus: str, start: float, end: float) -> float:
    """The time of the last scrape that found the service up (its series go stale after it)."""
    window = {"start": str(start), "end": str(end), "step": "1"}
    ups = [
        float(t)
        for item in ask(prometheus, "/api/v1/query_range", query="up == 1", **window)
        for t, _ in item["values"]
    ]
    if not ups:
        raise RuntimeError("Prometheus never scraped the demo")
    return max(ups)


def collect(model: dict[str, Any], prometheus: str, start: float, end: float) -> Answers:
    """Every panel's queries over ``start``..``end`` (tables: at ``end``)."""
    names = variable_names(model)
    window = {"start": str(start), "end": str(end), "step": "1"}
    answers: Answers = {}
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        found: list[Series] = []
        for target in panel["targets"]:
            query = promql(target["expr"], RATE_INTERVAL, names)
            template = target.get("legendFormat", "")
            if panel["type"] == "table":
                for item in ask(prometheus, "/api/v1/query", query=query, time=str(end)):
                    value = float(item["value"][1])
                    found.append(Series(legend(template, item["metric"]), [(end, value)]))
                continue
            for item in ask(prometheus, "/api/v1/query_range", query=query, **window):
                points = [(float(t), float(v)) for t, v in item["values"]]
                found.append(Series(legend(template, item["metric"]), points))
        answers[panel["id"]] = found
    return answers


# -- drawing ---------------------------------------------------------------------------------


def _formatter(unit: str) -> Callable[[float, object], str]:
    def plain(value: float, _: object = None) -> str:
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value / 1000:.3g}k"
        return f"{value:.3g}"

    def seconds(value: float, _: object = None) -> str:
        if value == 0:
            return "0"
        if abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"

    def percent(value: float, _: object = None) -> str:
        return f"{value * 100:.3g}%"

    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")

    def rate(value: float, _: object = None) -> str:
        return plain(value) + (suffix if value else "")

    return {"s": seconds, "percentunit": percent}.get(unit, rate)


def render(
    model: dict[str, Any], answers: Answers, out: Path, subtitle: str, span: tuple[float, float]
) -> list[str]:
    """Draw the dashboard into ``out``: rows as headings, each panel where ``gridPos`` puts it.

    ``span``: the time range every graph shows (unix seconds), as Grafana's time
    picker. Returns the titles of the panels drawn as "No data".
    """
    blank: list[str] = []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    grid_height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in model["panels"])
    unit_px = 30  # Grafana's grid unit is 30 px high; 24 columns across
    width_px, height_px = 1800, grid_height * unit_px + 60
    figure = plt.figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    figure.patch.set_facecolor(BACKGROUND)
    figure.text(0.008, 1 - 22 / height_px, model["title"], color=TEXT, fontsize=15, va="center")
    figure.text(
        0.992, 1 - 22 / height_px, subtitle, color=FAINT, fontsize=9, ha="right", va="center"
    )

    def box(pos: dict[str, int]) -> tuple[float, float, float, float]:
        pad = 4 / width_px
        left = pos["x"] / 24 + pad
        width = pos["w"] / 24 - 2 * pad
        top = (44 + pos["y"] * unit_px) / height_px
        height = pos["h"] * unit_px / height_px
        return left, 1 - top - height + 3 / height_px, width, height - 6 / height_px

    for panel in model["panels"]:
        left, bottom, width, height = box(panel["gridPos"])
        if panel["type"] == "row":
            figure.text(
                left,
                bottom + height / 2,
                panel["title"],
                color=TEXT,
                fontsize=12,
                weight="bold",
                va="center",
            )
            continue
        frame = figure.add_axes((left, bottom, width, height))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(BORDER)
        frame.text(
            0.012,
            0.985,
            panel["title"],
            transform=frame.transAxes,
            color=TEXT,
            fontsize=10,
            weight="bold",
            va="top",
        )
        found = answers.get(panel["id"], [])
        if not found or all(math.isnan(v) for series in found for _, v in series.points):
            blank.append(panel["title"])
            frame.text(
                0.5,
                0.5,
                "No data",
                transform=frame.transAxes,
                color=FAINT,
                ha="center",
                va="center",
                fontsize=11,
            )
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        shown = _formatter(unit)
        if panel["type"] == "table":
            rows = sorted(found, key=lambda series: series.name)
            for n, series in enumerate(rows[:8]):
                y = 0.8 - n * 0.1
                frame.text(0.04, y, series.name, transform=frame.transAxes, color=TEXT, fontsize=9)
                value = shown(series.points[-1][1], None)
                frame.text(
                    0.96, y, value, transform=frame.transAxes, color=TEXT, fontsize=9, ha="right"
                )
            continue
        # The plot inside the panel, below its title, above its legend.
        lines = len(found)
        legend_rows = min(4, math.ceil(lines / 3))
        legend_h = (legend_rows * 15 + 6) / (height * height_px)
        plot = figure.add_axes(
            (
                left + 52 / width_px,
                bottom + height * legend_h + 20 / height_px,
                width - 62 / width_px,
                height * (1 - legend_h) - 48 / height_px,
            )
        )
        plot.set_facecolor(PANEL)
        for spine in plot.spines.values():
            spine.set_visible(False)
        plot.tick_params(colors=FAINT, labelsize=7, length=0)
        plot.grid(color=BORDER, linewidth=0.6)
        plot.yaxis.set_major_formatter(FuncFormatter(shown))
        plot.xaxis.set_major_formatter(FuncFormatter(_clock))
        plot.xaxis.set_major_locator(MaxNLocator(5))
        for n, series in enumerate(found):
            points = [(t, v) for t, v in series.points if not math.isnan(v)]
            if not points:
                continue
            times = [t for t, _ in points]
            plot.plot(
                times,
                [v for _, v in points],
                color=PALETTE[n % len(PALETTE)],
                linewidth=1.3,
                label=series.name,
            )
        plot.set_ylim(bottom=0)
        plot.set_xlim(span)
        handles, labels = plot.get_legend_handles_labels()
        if handles:
            frame.legend(
                handles[: 3 * legend_rows],
                labels[: 3 * legend_rows],
                loc="lower left",
                ncol=3,
                fontsize=7,
                frameon=False,
                labelcolor=TEXT,
                handlelength=1.2,
                borderaxespad=0.3,
                columnspacing=1.0,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, facecolor=BACKGROUND)
    plt.close(figure)
    return blank


def _clock(seconds: float, _: object = None) -> str:
    """An axis tick: the time of day (UTC) of unix ``seconds``."""
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


# -- the run ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` as a child process (output into ``log``), stopped on the way out."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for(check: Callable[[], bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"still not {what} after {within:.0f} s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=75.0, help="seconds of demo (75)")
    parser.add_argument("--rate", type=float, default=8.0, help="webhooks a second (8)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the PNG ({OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    binary = shutil.which("prometheus")
    if binary is None:
        print("needs Prometheus: apt-get install prometheus", file=sys.stderr)
        return 2
    import yaml
    from rich.progress import Progress

    model = load_dashboard()
    with tempfile.TemporaryDirectory(prefix="interlink-dashboard-") as folder, Progress() as bar:
        work = Path(folder)
        demo_at = f"127.0.0.1:{free_port()}"
        prometheus = f"127.0.0.1:{free_port()}"
        config = scrape_config({"serve": demo_at})
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        interlink = str(Path(sys.executable).parent / "interlink")
        step = bar.add_task("Prometheus starting", total=args.duration + 5)
        with running(
            [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address={prometheus}",
            ],
            work / "prometheus.log",
        ):
            url = f"http://{prometheus}"
            wait_for(lambda: _answers(f"{url}/-/ready"), "Prometheus ready", 30)
            start = time.time()
            demo = [
                interlink,
                "demo",
                "--listen",
                demo_at,
                "--duration",
                str(args.duration),
                "--rate",
                str(args.rate),
            ]
            with running(demo, work / "demo.log") as process:
                bar.update(step, description="interlink demo running")
                while process.poll() is None:
                    bar.update(step, completed=time.time() - start)
                    time.sleep(0.5)
                if process.returncode != 0:
                    print((work / "demo.log").read_text()[-3000:], file=sys.stderr)
                    return 1
            bar.update(step, description="Querying Prometheus", completed=args.duration + 5)
            end = last_scraped(url, start, time.time())
            answers = collect(model, url, start, end)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
        subtitle = f"interlink demo, {args.duration:.0f} s, {stamp}"
        blank = render(model, answers, args.out, subtitle, (start, end))
    print(f"wrote {args.out}")
    if blank:
        print(f"panels with no data: {', '.join(blank)}", file=sys.stderr)
    return 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
