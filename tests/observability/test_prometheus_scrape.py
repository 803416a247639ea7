"""A real Prometheus scraping `serve` and a worker with deploy/prometheus/prometheus.yml.

The example configuration, pointed at two processes of one service (the
receiver, and a worker serving its metrics on ``listen``), loads the alert
rules, scrapes both, and the dashboard's expressions add up what each
counts: every webhook received once, every message settled once, and the
broker's dead letters once although both processes report them. The
services are traced, and Prometheus (with exemplar storage on) scrapes them
as OpenMetrics: the processing-duration exemplars it stores name the traces
of the messages handled. Prometheus comes from Debian's ``prometheus``
package (``.ci/run`` installs it); without it the test skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlink.observability._lean import LeanTracerProvider
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.client.client_support import closed_port
from tests.observability.deploy_support import (
    ROOT,
    alert_rules,
    dashboard_image,
    panels,
    promql,
    variables,
)
from tests.observability.metrics_support import scripted_run, write_config
from tests.polling import eventually
from tests.service.ops_support import HANDLED, post_webhook
from tests.webhooks.signing import SECRET

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
GOOD = 5
BY = re.compile(r"\bby \(([^)]*)\)")

CONFIG = """
service:
  name: scraped
  listen: 127.0.0.1:0
  readiness_timeout: 2s
  shutdown_timeout: 5s
broker:
  url: sqlite:///{db}
webhooks:
  shop:
    path: /webhooks/shop
    scheme: standard
    secrets: ["{secret}"]
    publish_to: orders
queues:
  orders:
    handler: tests.service.ops_support:handle
    max_attempts: 1
    permanent: [tests.service.ops_support.Refused]
"""


@contextlib.asynccontextmanager
async def prometheus(
    config: Path, data: Path, session: aiohttp.ClientSession
) -> AsyncIterator[str]:
    """Prometheus, ready, on a free loopback port (another, if something took it first)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    for _ in range(3):
        url = f"http://127.0.0.1:{closed_port()}"  # free now; if taken by then, another
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={url.removeprefix('http://')}",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await eventually(
                functools.partial(answers, session, url, process), "prometheus ready", 30, 0.1
            )
            if process.returncode is None:
                yield url
                return
            assert process.stderr is not None
            errors = (await process.stderr.read()).decode(errors="replace")
            assert "address already in use" in errors, f"prometheus exited: {errors[-2000:]}"
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    raise AssertionError("prometheus found no free port in three tries")


def scrape_config(tmp_path: Path, processes: dict[str, str]) -> Path:
    """deploy/prometheus/prometheus.yml scraping ``processes`` each second, with the alerts."""
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(dashboard_image.scrape_config(processes, ALERTS)))
    return config


def dead_letters_panel() -> str:
    """The dashboard's dead-letter query, its Grafana variables set to "all"."""
    (expr,) = (
        target["expr"]
        for panel in panels()
        for target in panel["targets"]
        if "interlink_queue_dead_letters" in target["expr"]
    )
    return promql(expr, "1m")


async def answers(
    session: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> bool:
    """Prometheus at ``url`` is ready, or its process has exited (the caller tells which)."""
    if process.returncode is not None:
        return True
    try:
        async with session.get(f"{url}/-/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False  # not listening yet


async def series(session: aiohttp.ClientSession, url: str, promql: str) -> list[dict[str, str]]:
    """An instant query's series: the labels of each."""
    async with session.get(f"{url}/api/v1/query", params={"query": promql}) as response:
        body = await response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return [{**item["metric"], "": item["value"][1]} for item in result]


async def query(session: aiohttp.ClientSession, url: str, promql: str) -> dict[str, float]:
    """An instant query's result, each series by its labels' values (``""`` without any)."""
    return {
        ",".join(value for name, value in found.items() if name): float(found[""])
        for found in await series(session, url, promql)
    }


async def exemplar_traces(session: aiohttp.ClientSession, url: str, metric: str) -> set[str]:
    """The ``trace_id`` of every exemplar Prometheus stored for ``metric`` in the last hour."""
    now = time.time()
    params = {"query": metric, "start": str(now - 3600), "end": str(now + 60)}
    async with session.get(f"{url}/api/v1/query_exemplars", params=params) as response:
        body = await response.json()
    assert body["status"] == "success", body
    return {
        exemplar["labels"]["trace_id"]
        for series in body["data"]
        for exemplar in series["exemplars"]
    }


async def test_prometheus_scrapes_serve_and_a_worker_and_the_dashboard_adds_them_up(
    tmp_path: Path,
) -> None:
    # Traced (into memory), so that the histograms carry exemplars for Prometheus to store.
    spans = InMemorySpanExporter()
    trace.set_tracer_provider(LeanTracerProvider(spans, batch=False))
    HANDLED.clear()
    path = tmp_path / "interlink.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "broker.db", secret=SECRET))
    loaded = load_config(path)
    async with (
        Service(loaded, workers=False) as serve,
        Service(loaded, http=False, listen="127.0.0.1:0") as worker,
        aiohttp.ClientSession() as session,
    ):
        config = scrape_config(tmp_path, {"serve": serve.url, "worker": worker.url})

        for n in range(GOOD):
            body = json.dumps({"id": f"o{n}"}).encode()
            assert await post_webhook(session, serve.url, f"wh_{n}", body) == 200
        refused = json.dumps({"id": "bad", "fail": True}).encode()
        assert await post_webhook(session, serve.url, "wh_bad", refused) == 200
        await eventually(lambda: len(HANDLED) == GOOD, "the good orders handled by the worker")

        async with prometheus(config, tmp_path / "tsdb", session) as url:

            async def both_up() -> bool:
                return await query(session, url, "sum by (process) (up)") == {
                    "serve": 1.0,
                    "worker": 1.0,
                }

            await eventually(both_up, "both processes scraped", within=30, step=0.2)
            # The dashboard's expressions, over every process scraped.
            settled = 'sum by (outcome) (interlink_messages_total{job=~"interlink"}) > 0'

            seen: dict[str, float] = {}

            async def all_settled() -> bool:
                seen.clear()
                seen.update(await query(session, url, settled))
                return seen == {"acked": GOOD, "dead_lettered": 1.0}

            await eventually(
                all_settled, lambda: f"the worker's settlements: {seen}", within=30, step=0.2
            )
            received = 'sum by (outcome) (interlink_webhooks_received_total{job=~"interlink"}) > 0'
            assert await query(session, url, received) == {"accepted": GOOD + 1.0}
            # Both processes report the broker's one dead letter; the dashboard shows it once.
            dead = "interlink_queue_dead_letters"
            assert await query(session, url, f"count by (queue) ({dead})") == {"orders": 2.0}
            assert await query(session, url, dead_letters_panel()) == {"orders": 1.0}
            async with session.get(f"{url}/api/v1/rules") as response:
                groups = (await response.json())["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            assert len(rules) == len(alert_rules())  # every rule loaded
            assert {rule["health"] for rule in rules} == {"ok"}, rules
            # Scraped as OpenMetrics, the processing durations brought their exemplars: each
            # names the trace of a message the worker handled.
            processing = "interlink_message_processing_duration_seconds_bucket"
            stored = await exemplar_traces(session, url, processing)
            traced = {
                f"{span.context.trace_id:032x}"
                for span in spans.get_finished_spans()
                if span.context is not None and span.name == "process orders"
            }
            assert len(traced) == GOOD + 1
            assert stored, "no exemplar stored"
            assert stored <= traced


async def test_every_panel_and_variable_of_the_dashboard_shows_data(
    tmp_path: Path, lean_provider: LeanTracerProvider
) -> None:
    """Each query the dashboard sends, as Grafana sends it, answers with series, none empty.

    The other tests check that the metrics the dashboard names are served;
    this one runs the dashboard's own queries (labels, ``by`` clauses,
    ratios, quantiles) on what a real Prometheus scraped from the service
    after the scripted run that makes every metric count something. A
    panel whose query names a label the metric does not have, or divides by
    a series that never matches, is a blank panel: it fails here. The
    service traces (interlink's provider, into memory), as the tracing panel
    needs.
    """
    async with FakeUpstream() as upstream:
        loaded = load_config(write_config(tmp_path, upstream.url))
        async with Service(loaded) as service, aiohttp.ClientSession() as session:
            config = scrape_config(tmp_path, {"serve": service.url})
            async with prometheus(config, tmp_path / "tsdb", session) as url:

                async def up() -> bool:
                    return await query(session, url, "sum by (process) (up)") == {"serve": 1.0}

                await eventually(up, "the service scraped", within=30, step=0.2)
                await scripted_run(service, upstream, session)
                queries = {
                    f"{panel['title']} [{target['refId']}]": promql(target["expr"], "1m")
                    for panel in panels()
                    for target in panel["targets"]
                }
                queries.update(
                    {
                        f"variable {variable['name']}": promql(variable["query"]["query"], "1m")
                        for variable in variables()
                    }
                )
                blank: dict[str, str] = {}

                async def all_show_data() -> bool:
                    blank.clear()
                    for title, promql_query in queries.items():
                        found = await series(session, url, promql_query)
                        # Each series carries the labels the legend and the table show.
                        wanted = {
                            label.strip()
                            for labels in BY.findall(promql_query)
                            for label in labels.split(",")
                        } - {"le"}
                        if not found or any(not wanted <= found_one.keys() for found_one in found):
                            blank[title] = f"{promql_query} -> {found}"
                    return not blank

                # A rate needs two scrapes of a series: the last ones appear with the run's end.
                await eventually(
                    all_show_data, lambda: f"data in every panel; blank: {blank}", 30, step=0.5
                )
    assert len(queries) >= 20  # every panel's targets and the four variables were asked
