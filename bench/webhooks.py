"""Webhooks in: verification calls/s and signed-webhook ingest requests/s, beside the baselines.

Run with ``make bench`` (or ``.venv/bin/python bench/webhooks.py``; ``--quick``
for a short smoke run). Two parts, each figure beside its baselines measured in
the same run:

1. Verification alone, in this process, timeit-style (``timeit.Timer`` over a
   statement, so no extra Python frame around the call): one Standard Webhooks
   v1 webhook (a fixed id, timestamp and signature; a JSON body of 1 KB and of
   64 KB) verified by ``interlink.webhooks.verify("standard", ...)``, by a
   scheme built once (``build_scheme("standard", [secret]).verify``), by
   ``standardwebhooks`` and ``svix`` (``Webhook(secret).verify(body, headers)``,
   both also parse the JSON body), and by the bare floor:
   ``hmac.compare_digest(hmac.digest(key, id.ts.body, "sha256"), expected)``.
   Each candidate's loop count is calibrated once, then each repeat (5) times
   every candidate in 5 interleaved slices (about 0.04 s each, the order
   reversed every other slice) and keeps its fastest slice, timeit's rule;
   ratios are taken within each repeat, then their median compared. Linux PSI
   says how much other work waited for a CPU meanwhile: at 10% or more the
   verification targets are flagged not conclusive.

2. HTTP ingest with wrk, 64 connections, 1 KB signed POSTs (Standard Webhooks
   v1, a unique webhook id per request) on loopback, against (a) nginx
   answering 200 (the machine's HTTP ceiling, as this load generator sees it),
   (b) a minimal Starlette endpoint that verifies the HMAC and answers 200
   (the verify-only baseline) and (c) interlink's ``WebhookReceiver`` with the
   SQLite broker (``synchronous=FULL``): verify, deduplicate, publish durably,
   then 2xx with a receipt. (b) and (c) run on uvicorn (uvloop, httptools,
   one process, ``bench/_webhooks_app.py``). Every server is started once and
   stopped by its PID at the end, whatever happens (SIGTERM too); one signed
   POST checks each answers 2xx, then an untimed wrk warm-up, then ``--repeats`` (3) timed runs of
   ``--duration`` (9 s) per server, interleaved (every other repeat in reverse
   order). Each run gets a fresh pool of signed ids (``_webhooks_load``), sized
   for 20k requests/s over the run; any request that came round the pool again
   (a duplicate id) is counted. A run is valid when wrk saw no non-2xx answer
   and no socket error; for interlink, also no duplicate id and one stored
   message per 2xx (counted in the SQLite file).

3. Tracing and metrics on that path (issue 8), in the same run, interleaved
   with the cases above: (d) the same receiver (its own SQLite file) with
   ``configure_tracing`` at sampling ratio 1.0 (interlink's
   ``LeanTracerProvider``: the SDK's ``ParentBased(TraceIdRatioBased(1.0))``
   decision, spans batched with the SDK ``BatchSpanProcessor``'s default
   sizes, to a ``SpanExporter`` whose ``export()`` reads every span, drops
   them and returns ``SUCCESS``) and a ``MetricsRecorder`` watching the receiver,
   served at ``GET /metrics``. /metrics is not scraped during the timed runs;
   it is scraped once after them, as a check (its accepted count must equal
   the stored messages; the exporter says how many spans it was handed: two
   per webhook). ``ingest_traced_fraction_of_untraced`` is (d)'s requests/s
   over (c)'s within each repeat, then the median; conclusive when (c) used
   at least 85% of its core and nginx served at least 2x its rate. The
   provider's export thread completes each span (its ``SpanContext``,
   attribute checks) before the exporter gets the batch; the exporter reads
   every span, as a real one would; ``informational.export_side_us_per_span``
   says, in-process, what recording and exporting cost per span, and
   ``informational.metrics_us_per_webhook`` what the recorder's
   request-duration histogram costs per webhook.

   (e), interleaved with the others too: (d) at sampling ratio 0.1, where
   one webhook in ten makes its two spans and every one still stores a
   ``traceparent``. ``informational.ingest_traced_at_ratio_0_1_fraction_of_untraced``
   is (e)'s requests/s over (c)'s, as above: issue 8 states its target at
   1.0; this is the same measure at a ratio a busy service is likelier to run.

   After the wire runs, with the servers stopped: ``informational.in_process_us_per_webhook``
   (``_webhooks_inprocess``) drives the untraced receiver and the traced one at ratio
   1.0 and 0.0 in process (64 concurrent ASGI calls, no HTTP; 20,000 webhooks per run,
   3 interleaved repeats, one process per run pinned to the server CPU) and reads the
   event loop thread's CPU per webhook. At ratio 0.0 every webhook takes the unsampled
   path, so it splits tracing's cost into what being on costs every webhook
   (``tracing_on_us``) and what recording its two spans adds (``recording_us``).

   Then ``--side-by-side`` (6) rounds of 6 s in which (c) and (d) are loaded
   at once, each by a wrk of its own, both servers on the server CPU: each
   gets about half of it, and whatever slows the machine over those seconds
   slows both. ``informational.ingest_traced_fraction_of_untraced_side_by_side``
   is (d)'s requests/s over (c)'s within each round, then the median:
   informational (the target stays the figure above, as issue 8 states it).
   It is steadier than back-to-back runs on a VM whose speed drifts (two
   identical servers side by side read 0.975-1.019 round by round), but the
   servers share the core's caches, which costs the traced one more: on a
   fast VM it reads about a tenth below the back-to-back figure.

Each run records the servers' CPU (busy fraction, microseconds per request,
and for uvicorn the event-loop thread apart from the others, SQLite's writer
among them) and wrk's. The ingest fractions are flagged conclusive when the
baseline server (verify-only; for the traced fraction, the untraced
receiver) used at least 85% of its core (a saturated one reads 0.90-0.91:
some loopback TCP work on its CPU is not charged to it) and nginx
served at least 2x its rate with the same load generator; otherwise
something else (other work on the machine, the generator) limited the servers.

With two CPUs or more, every server process (all its threads, SQLite's writer
included) runs pinned to the second usable CPU and wrk (and this process) to
the first; the JSON says what ran where.

The targets (issue 5), all from this run: ``verify`` >= 2x svix's rate and >=
0.5 of the bare floor's, 1 KB bodies; interlink ingest >= 0.75 of the Starlette
verify-only requests/s, and its p99 < 40 ms at 64 connections. Issue 8: the
traced receiver (tracing at ratio 1.0 and metrics on) >= 0.85 of the untraced
receiver's requests/s. wrk or nginx
missing: the cases that need it are skipped, with the reason.

JSON goes to stdout and to ``bench/results/webhooks.json``; progress goes to
stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import _webhooks_inprocess as inprocess
from _report import machine_facts, pressure, progress_bar, report
from _webhooks_ingest import (
    CONNECTIONS,
    INGEST_BODY,
    POOL_RATE,
    WRK_TIMEOUT_SECONDS,
    Placement,
    measure_ingest,
    summarize_ingest,
)
from _webhooks_load import nginx_version, which, wrk_version
from _webhooks_verify import BODY_SIZES, VERIFY_SLICES, measure_verification

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "webhooks.json"


TARGET_VERIFY_OVER_SVIX = 2.0
TARGET_VERIFY_FRACTION_OF_FLOOR = 0.5
TARGET_INGEST_FRACTION = 0.75
TARGET_P99_MS = 40.0
TARGET_TRACED_FRACTION = 0.85
# The ingest fraction compares the servers' costs when the baseline server used its whole
# core and the load generator had headroom (nginx, same generator, served this much more).
# A uvicorn server pinned to one CPU and saturated reads 0.90-0.91 here: part of the
# loopback TCP work on its CPU (softirq) is not charged to the process.
CPU_BOUND_BUSY = 0.85
# Verification compares single-threaded loops in this process: conclusive when other tasks
# on the machine waited for a CPU less than this share of the time (Linux PSI).
QUIET_CPU_PRESSURE_PERCENT = 10.0
GENERATOR_HEADROOM = 2.0

PACKAGES = (
    "interlink",
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "standardwebhooks",
    "svix",
    "opentelemetry-sdk",
    "prometheus_client",
)


@dataclass(frozen=True, slots=True)
class Settings:
    repeats: int
    verify_repeats: int
    duration: float
    warm_up: float
    verify_seconds: float
    wrk_threads: int
    pin: bool
    quick: bool
    side_by_side: int = 0
    side_by_side_seconds: float = 6.0


# --- the report ----------------------------------------------------------------------------


def _target(
    values: list[float], op: str, limit: float, digits: int, valid: bool = True
) -> dict[str, Any]:
    value = statistics.median(values)
    met = value >= limit if op == ">=" else value < limit
    entry: dict[str, Any] = {
        "value": round(value, digits),
        "target": f"{op} {limit:g}",
        "pass": met and valid,
        "each_repeat": [round(v, digits) for v in values],
    }
    if not valid:
        entry["invalid"] = "a run of either side had non-2xx answers, socket errors or duplicates"
    return entry


def _ratios(ours: list[float], theirs: list[float]) -> list[float]:
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def compare(
    verification: dict[str, dict[str, Any]], ingest: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    def rates(label: str, name: str) -> list[float]:
        return verification[label]["cases"][name]["each_repeat"]

    comparison: dict[str, Any] = {
        "method": (
            "each ratio is computed within each repeat (both sides measured back to back in"
            " that repeat), then its median over the repeats is compared to the target"
        ),
        "verify_1kb_over_svix": _target(
            _ratios(rates("1KB", "interlink_verify"), rates("1KB", "svix")),
            ">=",
            TARGET_VERIFY_OVER_SVIX,
            2,
        ),
        "verify_1kb_fraction_of_bare_hmac": _target(
            _ratios(rates("1KB", "interlink_verify"), rates("1KB", "bare_hmac")),
            ">=",
            TARGET_VERIFY_FRACTION_OF_FLOOR,
            3,
        ),
    }
    pressure_1kb = verification["1KB"]["cpu_pressure_percent"]
    for name in ("verify_1kb_over_svix", "verify_1kb_fraction_of_bare_hmac"):
        comparison[name]["cpu_pressure_percent"] = pressure_1kb
        comparison[name]["conclusive"] = (
            pressure_1kb is not None and pressure_1kb < QUIET_CPU_PRESSURE_PERCENT
        )
    informational: dict[str, Any] = {}
    for label in BODY_SIZES:
        for ours in ("interlink_verify", "interlink_prebuilt_scheme"):
            for theirs in ("svix", "standardwebhooks", "bare_hmac"):
                if (
                    label == "1KB"
                    and ours == "interlink_verify"
                    and theirs in ("svix", "bare_hmac")
                ):
                    continue
                informational[f"{ours}_{label}_over_{theirs}"] = round(
                    statistics.median(_ratios(rates(label, ours), rates(label, theirs))), 3
                )
    ours, base, top = (
        ingest.get("interlink_receiver", {}),
        ingest.get("starlette_verify_only", {}),
        ingest.get("nginx", {}),
    )
    if "each_repeat" in ours and "each_repeat" in base:
        mine = [run["requests_per_s"] for run in ours["each_repeat"]]
        theirs_rps = [run["requests_per_s"] for run in base["each_repeat"]]
        valid = ours["all_runs_valid"] and base["all_runs_valid"]
        fraction = _target(_ratios(mine, theirs_rps), ">=", TARGET_INGEST_FRACTION, 3, valid)
        _conclusive(fraction, base["each_repeat"], top, "baseline")
        comparison["ingest_rps_fraction_of_starlette_verify_only"] = fraction
        comparison["ingest_p99_ms_at_64_connections"] = _target(
            [run["p99_ms"] for run in ours["each_repeat"]],
            "<",
            TARGET_P99_MS,
            2,
            ours["all_runs_valid"],
        )
        informational["starlette_verify_only_p99_ms"] = base["p99_ms"]
        cpu = "server_cpu_us_per_request"
        if all(run.get(cpu) for run in ours["each_repeat"] + base["each_repeat"]):
            # What the requests/s fraction tends to when both servers are CPU-bound.
            informational["starlette_over_interlink_server_cpu_per_request"] = round(
                statistics.median(
                    _ratios(
                        [run[cpu] for run in base["each_repeat"]],
                        [run[cpu] for run in ours["each_repeat"]],
                    )
                ),
                3,
            )
        if "each_repeat" in top:
            informational["interlink_receiver_fraction_of_nginx"] = round(
                statistics.median(
                    _ratios(mine, [run["requests_per_s"] for run in top["each_repeat"]])
                ),
                4,
            )
    traced = ingest.get("interlink_receiver_traced", {})
    if "each_repeat" in ours and "each_repeat" in traced:
        comparison["ingest_traced_fraction_of_untraced"] = _traced_fraction(
            ours, traced, top, informational
        )
    tenth = ingest.get("interlink_receiver_traced_ratio_0_1", {})
    if "each_repeat" in ours and "each_repeat" in tenth:
        informational["ingest_traced_at_ratio_0_1_fraction_of_untraced"] = _sampled_fraction(
            ours, tenth
        )
    if "side_by_side_each_round" in ours and "side_by_side_each_round" in traced:
        informational["ingest_traced_fraction_of_untraced_side_by_side"] = _side_by_side(
            ours, traced
        )
    comparison["informational"] = informational
    return comparison


def _tracing_costs(base: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[float] | None:
    """Tracing's server CPU per webhook, traced minus untraced, run by run (None if unmeasured)."""
    cpu = "server_cpu_us_per_request"
    if not all(run.get(cpu) for run in base + runs):
        return None
    return [round(t[cpu] - u[cpu], 1) for u, t in zip(base, runs, strict=True)]


def _informational_fraction(
    base: list[dict[str, Any]], runs: list[dict[str, Any]], valid: bool, each: str
) -> dict[str, Any]:
    """``runs``' requests/s over ``base``'s, pair by pair: the median, each (``each``), CPU."""
    ratios = _ratios([r["requests_per_s"] for r in runs], [r["requests_per_s"] for r in base])
    out: dict[str, Any] = {
        "value": round(statistics.median(ratios), 3),
        each: [round(r, 3) for r in ratios],
        "valid": valid,
    }
    costs = _tracing_costs(base, runs)
    if costs is not None:
        out[f"tracing_and_metrics_server_cpu_us_per_request_{each}"] = costs
    return out


def _sampled_fraction(untraced: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """The traced fraction at sampling ratio 0.1, back to back as the target's (informational).

    Issue 8 states its target at ratio 1.0; this is the same measure for the
    ratio a busy service would more likely run with, beside it in every run.
    """
    valid = untraced["all_runs_valid"] and sampled["all_runs_valid"]
    return _informational_fraction(
        untraced["each_repeat"], sampled["each_repeat"], valid, "each_repeat"
    )


def _side_by_side(untraced: dict[str, Any], traced: dict[str, Any]) -> dict[str, Any]:
    """The traced fraction again, from rounds where both receivers ran at once on one CPU.

    Informational: the target is ``ingest_traced_fraction_of_untraced``, as the issue
    states it. Loaded over the same seconds, both servers meet the same spell of the
    machine, so the rounds agree with each other far better than back-to-back repeats.
    But they also share the core's caches, which costs the traced server more: on a
    fast VM this reads about a tenth below the back-to-back figure (``caveat``).
    """
    base = untraced["side_by_side_each_round"]
    runs = traced["side_by_side_each_round"]
    valid = untraced["side_by_side_all_valid"] and traced["side_by_side_all_valid"]
    out = _informational_fraction(base, runs, valid, "each_round")
    out["servers_cpu_busy_together_each_round"] = [
        round((u["server_cpu_busy_fraction"] or 0) + (t["server_cpu_busy_fraction"] or 0), 2)
        for u, t in zip(base, runs, strict=True)
    ]
    out["method"] = (
        "both receivers pinned to the server CPU and loaded at once, each by its own wrk"
        " (64 connections), for the same seconds; traced requests/s over untraced within"
        " each round, then the median"
    )
    out["caveat"] = (
        "steadier than back to back, but not the same quantity: the two servers share the"
        " core's caches, which costs the traced one more; on a fast VM (a webhook ~55 us)"
        " it read 0.74-0.78 where nine back-to-back repeats read 0.846"
    )
    return out


def _conclusive(
    fraction: dict[str, Any], base: list[dict[str, Any]], top: dict[str, Any], label: str
) -> None:
    """Flag ``fraction`` conclusive when its baseline server used its core and nginx (``top``)
    served at least ``GENERATOR_HEADROOM`` times its rate with the same load generator."""
    busy = [run["server_cpu_busy_fraction"] or 0.0 for run in base]
    fraction[f"{label}_server_cpu_busy_each_repeat"] = busy
    conclusive = statistics.median(busy) >= CPU_BOUND_BUSY
    if "each_repeat" in top:
        headroom = _ratios(
            [run["requests_per_s"] for run in top["each_repeat"]],
            [run["requests_per_s"] for run in base],
        )
        fraction[f"nginx_over_{label}_each_repeat"] = [round(h, 1) for h in headroom]
        conclusive = conclusive and statistics.median(headroom) >= GENERATOR_HEADROOM
    else:
        conclusive = False
    fraction["conclusive"] = conclusive


def _traced_fraction(
    untraced: dict[str, Any],
    traced: dict[str, Any],
    top: dict[str, Any],
    informational: dict[str, Any],
) -> dict[str, Any]:
    """Traced receiver's requests/s over the untraced one's, within each repeat (issue 8)."""
    base = untraced["each_repeat"]
    runs = traced["each_repeat"]
    valid = untraced["all_runs_valid"] and traced["all_runs_valid"]
    base_rps = [run["requests_per_s"] for run in base]
    fraction = _target(
        _ratios([run["requests_per_s"] for run in runs], base_rps),
        ">=",
        TARGET_TRACED_FRACTION,
        3,
        valid,
    )
    _conclusive(fraction, base, top, "untraced")
    cpu = "server_cpu_us_per_request"
    costs = _tracing_costs(base, runs)
    if costs is not None:
        informational["tracing_and_metrics_server_cpu_us_per_request_each_repeat"] = costs
        informational["untraced_over_traced_server_cpu_per_request"] = round(
            statistics.median(_ratios([u[cpu] for u in base], [t[cpu] for t in runs])), 3
        )
    informational["interlink_receiver_traced_p99_ms"] = traced["p99_ms"]
    informational["export_side_us_per_span"] = export_side_cost()
    informational["metrics_us_per_webhook"] = answer_histogram_cost()
    return fraction


def export_side_cost(spans: int = 4000) -> dict[str, Any] | str:
    """Where the traced case's tracing CPU goes: recording spans, and handing them to the exporter.

    ``LeanTracerProvider`` records a span on the request path (start,
    attributes, end, queued); its export thread completes each span's
    ``ReadableSpan`` fields (the ``SpanContext``, attribute checks) and hands
    the batch to the exporter. Measured in-process on ingest-shaped spans (a
    SERVER span and its ``publish`` child), microseconds per span for each
    half; the exporter reads every span and keeps nothing.
    """
    try:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        from opentelemetry.trace import SpanKind

        from interlink.observability._lean import LeanTracerProvider
    except ImportError as exc:
        return f"not measured: {exc}"

    class Reading(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, batch: Any) -> SpanExportResult:
            for _span in batch:
                self.spans += 1
            return SpanExportResult.SUCCESS

    exporter = Reading()
    provider = LeanTracerProvider(exporter, sampling_ratio=1.0)
    tracer = provider.get_tracer("interlink")
    recording = exporting = 0.0
    chunk = 1000  # below the default queue size (2048): nothing is dropped
    for start in range(0, spans // 2, chunk // 2):
        started = time.perf_counter()
        for n in range(start, start + chunk // 2):
            server = tracer.start_span(
                "POST /webhooks/bench",
                kind=SpanKind.SERVER,
                attributes={"http.request.method": "POST", "http.route": "/webhooks/bench"},
            )
            child = server.start_child(  # type: ignore[attr-defined]
                tracer, "publish bench.events", SpanKind.PRODUCER, {"messaging.message.id": str(n)}
            )
            child.end()
            server.finish(
                {"interlink.webhook.outcome": "accepted", "http.response.status_code": 202}
            )
        recording += time.perf_counter() - started
        started = time.perf_counter()
        provider.force_flush()
        exporting += time.perf_counter() - started
    provider.shutdown()
    return {
        "spans": exporter.spans,
        "recording_us_per_span": round(recording / exporter.spans * 1e6, 2),
        "export_thread_us_per_span": round(exporting / exporter.spans * 1e6, 2),
    }


def answer_histogram_cost(webhooks: int = 50_000) -> dict[str, Any] | str:
    """What metrics add to each webhook on the receiver's path: the request-duration histogram.

    The receiver hands each answered request to its ``answered``
    listeners; the traced case's ``MetricsRecorder`` keeps
    ``interlink_webhook_request_duration_seconds`` that way, with the SERVER
    span's ids as the bucket's exemplar when it is sampled. Measured
    in-process, microseconds per webhook: the recorder's listener with a
    sampled span (as in the traced case) and without one, beside a listener
    that does nothing, called the same way (the floor). It sets interlink's
    provider as this process's global one (exemplars are kept only while
    tracing is on); nothing in this process traces after it.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        from opentelemetry.trace import SpanKind

        from interlink.observability import MetricsRecorder
        from interlink.observability._lean import LeanTracerProvider
    except ImportError as exc:
        return f"not measured: {exc}"

    class Discarding(SpanExporter):
        def export(self, batch: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = LeanTracerProvider(Discarding(), sampling_ratio=1.0)
    trace.set_tracer_provider(provider)
    span = trace.get_tracer("interlink").start_span("POST /webhooks/bench", kind=SpanKind.SERVER)
    listener = MetricsRecorder()._on_webhook_answered

    def nothing(source: str, outcome: str, seconds: float, span: Any) -> None:
        pass

    def timed(call: Any, with_span: Any) -> float:
        best = float("inf")
        for _ in range(5):  # the best of five: the floor of what the VM lets it cost
            started = time.perf_counter()
            for _ in range(webhooks):
                call("bench", "accepted", 0.002, with_span)
            best = min(best, time.perf_counter() - started)
        return round(best / webhooks * 1e6, 3)

    figures = {
        "traced_us_per_webhook": timed(listener, span),
        "untraced_us_per_webhook": timed(listener, None),
        "empty_listener_us_per_webhook": timed(nothing, span),
    }
    span.end()
    provider.shutdown()
    return figures


def _in_process(
    settings: Settings, secret: str, placement: Placement, progress: Any
) -> dict[str, Any] | str:
    """Where tracing's cost goes, in process (``_webhooks_inprocess``): after the wire runs."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401 - the traced modes need the SDK
        import uvloop  # noqa: F401
    except ImportError as exc:
        return f"not measured: {exc}"
    repeats = 1 if settings.quick else 3
    task = progress.add_task("in process", total=repeats * len(inprocess.MODES))

    def tick(what: str | None) -> None:
        if what is None:
            progress.update(task, advance=1)
        else:
            progress.update(task, description=what)

    return inprocess.measure(
        repeats=repeats,
        webhooks=5_000 if settings.quick else 20_000,
        cpu=placement.server_cpu,
        secret=secret,
        tick=tick,
    )


def machine(
    load: tuple[float, float, float],
    pressure_before: dict[str, float] | None,
    tools: dict[str, str | None],
) -> dict[str, Any]:
    return {
        **machine_facts(load, pressure_before, PACKAGES),
        "wrk": {
            "path": tools["wrk"],
            "version": wrk_version(tools["wrk"]) if tools["wrk"] else None,
        },
        "nginx": {
            "path": tools["nginx"],
            "version": nginx_version(tools["nginx"]) if tools["nginx"] else None,
        },
    }


def run_benchmark(settings: Settings) -> dict[str, Any]:
    console = Console(stderr=True)
    load = os.getloadavg()
    pressure_before = pressure()
    # A fresh Standard Webhooks secret for this run: whsec_ + base64 of 24 random bytes.
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    tools = {"wrk": which("wrk", "/usr/bin/wrk"), "nginx": which("nginx", "/usr/sbin/nginx")}
    placement = Placement(pin=settings.pin)
    started = time.perf_counter()
    with progress_bar(console) as progress:
        placement.load_side()
        try:
            verification = measure_verification(settings, secret, progress)
        finally:
            placement.free()
        cases, all_skipped = measure_ingest(settings, secret, placement, progress, tools)
        in_process = _in_process(settings, secret, placement, progress)
    elapsed = time.perf_counter() - started
    ingest = {case.name: summarize_ingest(case) for case in cases}
    result: dict[str, Any] = {
        "benchmark": (
            "Standard Webhooks v1 (HMAC-SHA256): verification calls/s in-process (1 KB, 64 KB"
            f" JSON bodies); HTTP ingest with wrk, {CONNECTIONS} connections, {INGEST_BODY}-byte"
            " signed POSTs with unique webhook ids, loopback"
        ),
        "machine": machine(load, pressure_before, tools),
        "settings": {
            "quick": settings.quick,
            "verify_repeats": settings.verify_repeats,
            "verify_seconds_per_candidate_per_repeat": settings.verify_seconds,
            "verify_slices_per_repeat": VERIFY_SLICES,
            "ingest_repeats": settings.repeats,
            "ingest_run_seconds": settings.duration,
            "ingest_warm_up_seconds": settings.warm_up,
            "connections": CONNECTIONS,
            "wrk_threads": settings.wrk_threads,
            "wrk_timeout_seconds": WRK_TIMEOUT_SECONDS,
            "ingest_body_bytes": INGEST_BODY,
            "pool": (
                f"a fresh pool of max({POOL_RATE} x run seconds, 10000) signed ids per run, one"
                " timestamp (now at generation), each wrk thread taking every n-th id"
            ),
            "order": "cases interleaved within each repeat, every other repeat in reverse order",
            "uvicorn": "uvloop, httptools, 1 process, lifespan on, access log off",
            "placement": placement.describe(),
        },
        "statistic": (
            "medians over repeats; calls/s for verification; requests/s (wrk's count over its"
            " duration) and wrk's latency percentiles (ms) for ingest; server CPU busy = CPU"
            " seconds of the server's processes over the run's wall time (1.0 = one core);"
            " cpu_pressure_percent: share of the run some task waited for a CPU (Linux PSI),"
            " which for interlink includes its event loop and SQLite writer thread waiting for"
            " each other on their one CPU"
        ),
        "measuring_seconds": round(elapsed, 1),
        "verification": verification,
        "ingest": {"skipped": all_skipped, "cases": ingest},
    }
    comparison = compare(verification, ingest)
    comparison["informational"]["in_process_us_per_webhook"] = in_process
    result["comparison"] = comparison
    checked = {k: v for k, v in comparison.items() if isinstance(v, dict) and "pass" in v}
    missing = [
        name
        for name in (
            "ingest_rps_fraction_of_starlette_verify_only",
            "ingest_p99_ms_at_64_connections",
            "ingest_traced_fraction_of_untraced",
        )
        if name not in checked
    ]
    verify_quiet = bool(checked["verify_1kb_over_svix"].get("conclusive"))
    fraction = checked.get("ingest_rps_fraction_of_starlette_verify_only", {})
    traced_fraction = checked.get("ingest_traced_fraction_of_untraced", {})
    ingest_conclusive = bool(fraction.get("conclusive", False)) and bool(
        traced_fraction.get("conclusive", False)
    )
    result["targets"] = {
        "pass": all(entry["pass"] for entry in checked.values()) and not missing,
        "each": {name: entry["pass"] for name, entry in checked.items()},
        "not_measured": missing,
        "conclusive": verify_quiet and ingest_conclusive,
        "verification_conclusive": verify_quiet,
        "ingest_conclusive": ingest_conclusive,
        "notes": _notes(verify_quiet, ingest_conclusive, missing, ingest),
    }
    return result


def _notes(
    verify_quiet: bool, conclusive: bool, missing: list[str], ingest: dict[str, dict[str, Any]]
) -> list[str]:
    notes = []
    if not verify_quiet:
        notes.append(
            f"verification not conclusive: other tasks waited for a CPU at least"
            f" {QUIET_CPU_PRESSURE_PERCENT:g}% of the time during the 1 KB measurements (Linux"
            " PSI): other work on the machine; rerun on a quiet machine"
        )
    if missing:
        reasons = "; ".join(
            f"{name}: {case['skipped']}" for name, case in ingest.items() if "skipped" in case
        )
        notes.append(f"ingest targets not measured ({reasons or 'a case failed: see its errors'})")
    elif conclusive:
        notes.append(
            "ingest conclusive: the verify-only baseline and the untraced receiver used their"
            f" whole core and nginx served at least {GENERATOR_HEADROOM:g}x their rates with the"
            " same load generator, so the fractions compare the servers' own costs"
        )
    elif "skipped" in ingest.get("nginx", {}):
        notes.append(
            "ingest not conclusive: nginx was not measured"
            f" ({ingest['nginx']['skipped']}), so the load generator's headroom is unknown"
        )
    else:
        notes.append(
            "ingest not conclusive: the verify-only server or the untraced receiver was busy"
            f" less than {CPU_BOUND_BUSY:.0%} of its core, or nginx served less than"
            f" {GENERATOR_HEADROOM:g}x its rate (the load generator or other work on the"
            " machine limited the servers); rerun on a quiet machine"
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="ingest repeats (3; quick 2)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per wrk run (9; quick 2)"
    )
    parser.add_argument(
        "--verify-repeats", type=int, default=None, help="verification repeats (5; quick 3)"
    )
    parser.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads (1: wrk has one CPU when pinned)"
    )
    parser.add_argument(
        "--side-by-side",
        type=int,
        default=None,
        help="rounds of the two receivers loaded at once (6; quick 2; 0: none)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~30 s)")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing to any CPU")
    args = parser.parse_args(argv)
    quick = args.quick
    settings = Settings(
        repeats=args.repeats or (2 if quick else 3),
        verify_repeats=args.verify_repeats or (3 if quick else 5),
        duration=args.duration or (2.0 if quick else 9.0),
        warm_up=1.0 if quick else 2.0,
        verify_seconds=0.05 if quick else 0.2,
        wrk_threads=args.wrk_threads,
        pin=not args.no_pin,
        quick=quick,
        side_by_side=(2 if quick else 6) if args.side_by_side is None else args.side_by_side,
        side_by_side_seconds=2.0 if quick else 6.0,
    )
    if settings.repeats < 1 or settings.verify_repeats < 1 or settings.duration < 1:
        parser.error("--repeats and --verify-repeats must be >= 1, --duration >= 1")
    if settings.side_by_side < 0:
        parser.error("--side-by-side must be >= 0")
    if settings.wrk_threads < 1:
        parser.error("--wrk-threads must be >= 1")
    # SIGTERM unwinds like Ctrl-C: every server this run started is stopped by its PID.
    signal.signal(signal.SIGTERM, _terminated)
    return report(run_benchmark(settings), RESULTS)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
