"""``bench/webhooks.py``, part 2: ingest over HTTP under wrk (see its docstring)."""

from __future__ import annotations

import base64
import gc
import importlib
import os
import resource
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import Progress

from _webhooks_app import METRICS_PATH, PATH, QUEUE, SOURCE
from _webhooks_load import (
    Pool,
    Server,
    WrkRun,
    cpu_seconds,
    json_body,
    nginx_server,
    post_once,
    run_wrk,
    sign,
    thread_cpu_seconds,
    uvicorn_server,
    write_pool,
    write_script,
)
from _webhooks_verify import CpuStall

if TYPE_CHECKING:
    from webhooks import Settings

CONNECTIONS = 64
INGEST_BODY = 1024
# A pool this many signed ids per second of run: above what one uvicorn core serves here
# (a few thousand/s), so the Python servers never see an id twice; nginx may wrap (it does
# not check ids, and the wrap is reported).
POOL_RATE = 20_000
WRK_TIMEOUT_SECONDS = 5
# What the interlink cases import, and the traced ones besides.
_RECEIVER = ("interlink.webhooks",)
_TRACED = (*_RECEIVER, "opentelemetry.sdk.trace", "prometheus_client")
# The two receivers the side-by-side rounds load at once.
SIDE_BY_SIDE = ("interlink_receiver", "interlink_receiver_traced")


@dataclass(slots=True)
class IngestCase:
    name: str
    description: str
    # The ``_webhooks_app.py`` app it serves (None: nginx); whether it stores what it takes
    # (its own SQLite file) and serves /metrics; the modules it needs.
    app: str | None = None
    stores: bool = False
    metrics: bool = False
    needs: tuple[str, ...] = ()
    server: Server | None = None
    skipped: str | None = None
    db: Path | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    # Its figures in each side-by-side round, where it ran at once with another (runs_at_once).
    side_by_side: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sanity: dict[str, Any] | None = None


class Placement:
    """With two usable CPUs or more: the servers on the second, wrk and this process on the first."""

    def __init__(self, *, pin: bool) -> None:
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.all = set(usable)
        self.pair = (usable[0], usable[1]) if pin and len(usable) >= 2 else None

    @property
    def server_cpu(self) -> int | None:
        return self.pair[1] if self.pair else None

    def load_side(self) -> None:
        if self.pair is not None:
            os.sched_setaffinity(0, {self.pair[0]})

    def free(self) -> None:
        if self.pair is not None:
            os.sched_setaffinity(0, self.all)

    def describe(self) -> dict[str, Any]:
        if self.pair is None:
            return {"pinned": False, "note": "not pinned: the scheduler places every process"}
        load, server = self.pair
        return {
            "pinned": True,
            "server_cpu": server,
            "load_generator_cpu": load,
            "note": (
                f"every server process (nginx master and worker; each uvicorn process with all"
                f" its threads, SQLite's writer included) pinned to CPU {server}; wrk (all its"
                f" threads) and this benchmark process to CPU {load}; the verification part"
                f" ran before the servers started, this process on CPU {load}"
            ),
        }


def _stored(db: Path) -> tuple[int, int] | None:
    """(messages, distinct ids) in the receiver's SQLite file; None if it cannot be read."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            rows = connection.execute(
                "SELECT count(*), count(DISTINCT id) FROM messages"
            ).fetchone()
        return int(rows[0]), int(rows[1])
    except sqlite3.Error:
        return None


def _settled_count(db: Path, *, limit: float = 3.0, step: float = 0.05) -> int | None:
    """The stored messages once the count holds still for two reads in a row (or ``limit`` s).

    Requests in flight when wrk stopped are still being stored: counted as
    soon as they are, instead of after a fixed wait.
    """
    deadline = time.monotonic() + limit
    last = _stored_count(db)
    while time.monotonic() < deadline:
        time.sleep(step)
        now = _stored_count(db)
        if now == last:
            return now
        last = now
    return last


def _stored_count(db: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.Error:
        return None


@dataclass(slots=True)
class _Load:
    """One case's part of a run: its pool of signed ids, wrk's script, its counters before."""

    case: IngestCase
    pool: Pool
    script: Path
    stored_before: int | None = None
    cpu_before: float | None = None
    threads_before: dict[int, float] = field(default_factory=dict)
    cpu_after: float | None = None
    threads_after: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Driver:
    """What every wrk run of one benchmark shares."""

    settings: Settings
    wrk: str
    workdir: Path
    key: bytes
    body_path: Path
    body: bytes
    run_id: str


def _prepare(driver: _Driver, case: IngestCase, seconds: float, label: str) -> _Load:
    size = max(int(POOL_RATE * seconds), 10_000)
    prefix = f"{driver.run_id}{case.name[:3]}{label}"
    pool: Pool = write_pool(
        driver.workdir / f"pool-{case.name}.txt", driver.key, driver.body, size, prefix
    )
    script = write_script(
        driver.workdir / f"run-{case.name}.lua",
        pool,
        driver.body_path,
        driver.settings.wrk_threads,
    )
    return _Load(case, pool, script, _stored_count(case.db) if case.db else None)


def _count(load: _Load, *, after: bool) -> None:
    """The server's CPU seconds (all processes, and its threads), before or after the run."""
    server = load.case.server
    assert server is not None
    cpu, threads = cpu_seconds(server.pids), thread_cpu_seconds(server.pid)
    if after:
        load.cpu_after, load.threads_after = cpu, threads
    else:
        load.cpu_before, load.threads_before = cpu, threads


def runs_at_once(
    driver: _Driver,
    cases: list[IngestCase],
    seconds: float,
    label: str,
    quiet_pids: list[int],
) -> dict[str, dict[str, Any]]:
    """Each case's fresh pool of signed ids, its wrk run, its server's CPU and stored rows.

    The runs start once every server is idle (``wait_quiet``): the receiver's
    background work after its own run (WAL checkpoints) must not land in the
    next case's figures, nor a backlog in its own.

    With several ``cases`` (side by side), each is loaded by a wrk of its
    own over the same seconds, their servers sharing one CPU: the scheduler
    gives each about half of it, and whatever else slows the machine in
    those seconds (another guest, the host) slows both alike, so their
    requests/s over each other is each one's cost per request over the
    other's, without the drift between back-to-back runs. wrk's CPU is then
    all the wrk processes' together (``wrk_cpu_busy_fraction``).
    """
    loads = [_prepare(driver, case, seconds, label) for case in cases]
    settle = wait_quiet(quiet_pids)
    for load in loads:
        _count(load, after=False)
    gc.collect()
    stall = CpuStall()
    runs: dict[str, WrkRun] = {}
    failures: list[BaseException] = []

    def drive(load: _Load) -> None:
        server = load.case.server
        assert server is not None
        try:
            runs[load.case.name] = run_wrk(
                driver.wrk,
                server.url + PATH,
                load.script,
                connections=CONNECTIONS,
                threads=driver.settings.wrk_threads,
                seconds=seconds,
                timeout_seconds=WRK_TIMEOUT_SECONDS,
            )
        except BaseException as exc:  # handed to the caller below
            failures.append(exc)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    threads = [threading.Thread(target=drive, args=(load,)) for load in loads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for load in loads:
        _count(load, after=True)
    if failures:
        raise failures[0]
    pressure = stall.percent()
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = {}
    for load in loads:
        run = runs[load.case.name]
        run.wrk_cpu_seconds = wrk_cpu
        out[load.case.name] = _figures(load, run, pressure, settle)
    return out


def _figures(
    load: _Load, run: WrkRun, cpu_pressure: float | None, settle: float | None
) -> dict[str, Any]:
    """One case's figures for a wrk run, and whether the run is valid (every answer stored)."""
    case, pool = load.case, load.pool
    server = case.server
    assert server is not None
    cpu_before, threads_before = load.cpu_before, load.threads_before
    cpu_after, threads_after = load.cpu_after, load.threads_after
    figures = run.figures
    duration = figures["duration_us"] / 1e6
    requests = figures["requests"]
    socket_errors = sum(
        figures[f"errors_{kind}"] for kind in ("connect", "read", "write", "timeout")
    )
    out: dict[str, Any] = {
        "requests": requests,
        "seconds": round(duration, 3),
        "requests_per_s": round(requests / duration) if duration else 0,
        "p50_ms": round(figures["latency_p50_us"] / 1000, 2),
        "p90_ms": round(figures["latency_p90_us"] / 1000, 2),
        "p99_ms": round(figures["latency_p99_us"] / 1000, 2),
        "p999_ms": round(figures["latency_p999_us"] / 1000, 2),
        "max_ms": round(figures["latency_max_us"] / 1000, 2),
        "non_2xx": figures["errors_status"],
        "socket_errors": socket_errors,
        "requests_issued": figures["issued"],
        "pool_size": pool.size,
        "pool_wrapped_requests": figures["wrapped"],
        "pool_generation_s": round(pool.generation_seconds, 2),
        "server_cpu_busy_fraction": (
            round((cpu_after - cpu_before) / run.wall_seconds, 2)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        "server_cpu_us_per_request": (
            round((cpu_after - cpu_before) / requests * 1e6, 1)
            if cpu_before is not None and cpu_after is not None and requests
            else None
        ),
        "wrk_cpu_busy_fraction": round(run.wrk_cpu_seconds / run.wall_seconds, 2),
        "cpu_pressure_percent": cpu_pressure,
        "settle_seconds": settle,
    }
    if server.name != "nginx":
        out["server_threads_cpu_busy"] = _thread_split(
            server.pid, threads_before, threads_after, run.wall_seconds
        )
    problems = []
    if out["non_2xx"]:
        problems.append(f"{out['non_2xx']} non-2xx answers")
    if socket_errors:
        problems.append(f"{socket_errors} socket errors")
    if case.db is not None:
        if out["pool_wrapped_requests"]:
            problems.append(f"{out['pool_wrapped_requests']} requests reused an id (duplicates)")
        stored_after = _settled_count(case.db)  # with the requests in flight when wrk stopped
        if load.stored_before is not None and stored_after is not None:
            added = stored_after - load.stored_before
            out["stored_messages_added"] = added
            # wrk counts the requests answered before it stopped; up to one more per
            # connection was in flight then, and is stored without wrk counting it.
            if not requests <= added <= out["requests_issued"]:
                problems.append(
                    f"{added} messages stored for {requests} answered / {out['requests_issued']}"
                    " issued requests"
                )
        else:
            problems.append("could not count the stored messages")
    out["valid"] = not problems
    if problems:
        out["problems"] = problems
    return out


def _thread_split(
    pid: int, before: dict[int, float], after: dict[int, float], wall: float
) -> dict[str, float]:
    """The server's CPU busy fraction split into its main thread (the event loop) and the rest."""
    main = after.get(pid, 0.0) - before.get(pid, 0.0)
    rest = sum(seconds - before.get(tid, 0.0) for tid, seconds in after.items() if tid != pid)
    return {"event_loop_thread": round(main / wall, 2), "other_threads": round(rest / wall, 2)}


def start_case(
    case: IngestCase,
    stack: ExitStack,
    nginx: str | None,
    workdir: Path,
    secret: str,
    placement: Placement,
) -> None:
    cpu = placement.server_cpu
    app = case.app
    if app is None:
        assert nginx is not None
        case.server = stack.enter_context(nginx_server(nginx, workdir / "nginx", cpu=cpu))
        return
    case.db = workdir / f"{case.name}.db" if case.stores else None
    case.server = stack.enter_context(
        uvicorn_server(app, cpu=cpu, secret=secret, db=case.db, log=workdir / f"{app}.log")
    )


def sanity_check(case: IngestCase, key: bytes, body: bytes, run_id: str) -> None:
    """One signed POST with the standard library: the server must answer 2xx."""
    assert case.server is not None
    msg_id = f"{run_id}sanity{case.name[:3]}"
    stamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + sign(key, msg_id, stamp, body),
    }
    status, answer = post_once(case.server.url, headers, body)
    case.sanity = {"status": status, "body": answer[:200].decode(errors="replace")}
    if not 200 <= status < 300:
        raise RuntimeError(f"a signed POST answered {status}: {answer[:200]!r}")


def measure_ingest(
    settings: Settings,
    secret: str,
    placement: Placement,
    progress: Progress,
    tools: dict[str, str | None],
) -> tuple[list[IngestCase], str | None]:
    """Every ingest case (or why it was skipped); the reason all were skipped, if they were."""
    wrk, nginx = tools["wrk"], tools["nginx"]
    cases = [
        IngestCase("nginx", "nginx answering 200 (return 200), 1 worker process"),
        IngestCase(
            "starlette_verify_only",
            "Starlette, one route: read the body, verify the HMAC (bare hmac + compare_digest), 200",
            app="starlette",
            needs=("starlette",),
        ),
        IngestCase(
            "interlink_receiver",
            f"interlink WebhookReceiver, source {SOURCE!r} (scheme standard) to queue {QUEUE!r},"
            " SQLite broker (synchronous=FULL): verify, dedup, durable publish, 2xx with a receipt",
            app="interlink",
            stores=True,
            needs=_RECEIVER,
        ),
        IngestCase(
            "interlink_receiver_traced",
            "the same receiver (its own SQLite file) with tracing and metrics on:"
            " configure_tracing at sampling ratio 1.0 (interlink's LeanTracerProvider, spans"
            " batched to an exporter that reads and discards them); a MetricsRecorder watching"
            " the receiver behind GET /metrics, scraped once after the timed runs",
            app="interlink_traced",
            stores=True,
            metrics=True,
            needs=_TRACED,
        ),
        IngestCase(
            "interlink_receiver_traced_ratio_0_1",
            "the traced receiver (its own SQLite file) at sampling ratio 0.1: one webhook in"
            " ten makes its spans, every one stores a traceparent; informational",
            app="interlink_traced_tenth",
            stores=True,
            metrics=True,
            needs=_TRACED,
        ),
    ]
    if wrk is None:
        reason = "wrk is not installed (apt-get install wrk)"
        for case in cases:
            case.skipped = reason
        return cases, reason
    for case in cases:
        if case.app is None and nginx is None:
            case.skipped = "nginx is not installed (apt-get install nginx)"
        elif case.needs:
            case.skipped = _missing(case.needs, "the bench, otel and service extras are needed")
    body = json_body(INGEST_BODY)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="interlink-bench-webhooks-"))
    live = [case for case in cases if case.skipped is None]
    task = progress.add_task(
        "starting servers", total=len(live) * (settings.repeats + 1) + settings.side_by_side
    )
    try:
        body_path = workdir / "body.json"
        body_path.write_bytes(body)
        with ExitStack() as stack:
            for case in live:
                progress.update(task, description=f"start {case.name}")
                try:
                    start_case(case, stack, nginx, workdir, secret, placement)
                    sanity_check(case, key, body, run_id)
                except Exception as exc:
                    case.skipped = f"could not start or answer: {type(exc).__name__}: {exc}"
            live = [case for case in live if case.skipped is None]
            driver = _Driver(settings, wrk, workdir, key, body_path, body, run_id)
            placement.load_side()
            for case in live:
                progress.update(task, description=f"warm up {case.name}")
                try:
                    runs_at_once(driver, [case], settings.warm_up, "w", server_pids(live))
                except Exception as exc:
                    case.errors.append(f"warm-up: {type(exc).__name__}: {exc}")
                progress.advance(task)
            for r in range(settings.repeats):
                for case in live if r % 2 == 0 else list(reversed(live)):
                    progress.update(
                        task, description=f"repeat {r + 1}/{settings.repeats} {case.name}"
                    )
                    try:
                        figures = runs_at_once(
                            driver, [case], settings.duration, f"r{r}", server_pids(live)
                        )
                        case.runs.append(figures[case.name])
                    except Exception as exc:
                        case.errors.append(f"repeat {r + 1}: {type(exc).__name__}: {exc}")
                    progress.advance(task)
            pair = [case for case in live if case.name in SIDE_BY_SIDE]
            for r in range(settings.side_by_side if len(pair) == 2 else 0):
                progress.update(task, description=f"side by side {r + 1}/{settings.side_by_side}")
                try:
                    figures = runs_at_once(
                        driver, pair, settings.side_by_side_seconds, f"s{r}", server_pids(live)
                    )
                except Exception as exc:
                    for case in pair:
                        case.errors.append(f"side by side {r + 1}: {type(exc).__name__}: {exc}")
                else:
                    for case in pair:
                        case.side_by_side.append(figures[case.name])
                progress.advance(task)
            for case in live:
                if case.db is not None:
                    stored = _stored(case.db)
                    if stored is not None:
                        case.sanity = dict(case.sanity or {})
                        case.sanity["stored_messages_total"] = stored[0]
                        case.sanity["stored_distinct_ids_total"] = stored[1]
                if case.metrics:
                    try:
                        case.sanity = dict(case.sanity or {}, **_scrape(case))
                    except Exception as exc:
                        case.errors.append(f"/metrics: {type(exc).__name__}: {exc}")
    finally:
        placement.free()
        shutil.rmtree(workdir, ignore_errors=True)
    return cases, None


def server_pids(cases: list[IngestCase]) -> list[int]:
    """Every process of every running server."""
    return [pid for case in cases if case.server is not None for pid in case.server.pids]


def wait_quiet(pids: list[int], *, limit: float = 20.0, step: float = 0.25) -> float | None:
    """Wait until ``pids`` used under 4 % of a CPU for two steps in a row; the seconds waited.

    ``None`` when they were still busy after ``limit`` seconds (the run goes
    ahead, and the JSON says so).
    """
    start = time.monotonic()
    last = cpu_seconds(pids)
    calm = 0
    while last is not None and time.monotonic() - start < limit:
        time.sleep(step)
        now = cpu_seconds(pids)
        if now is None:
            break
        calm = calm + 1 if now - last < 0.04 * step else 0
        last = now
        if calm >= 2:
            return round(time.monotonic() - start, 2)
    return None if last is not None else 0.0


def _missing(modules: tuple[str, ...], why: str) -> str | None:
    """``None`` when every module imports, else ``why`` and the import error."""
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as exc:
        return f"{why}: {exc}"
    return None


def _scrape(case: IngestCase) -> dict[str, Any]:
    """The traced server's ``/metrics``, once, after the timed runs: what it counted and exported.

    ``webhooks_accepted_metric`` must equal the stored messages (the metric reads the
    receiver's own count); ``spans_exported`` is what the discarding exporter was handed
    (two spans per webhook, less what is still batched: the processor exports every 5 s or
    512 spans).
    """
    assert case.server is not None
    import urllib.request

    with urllib.request.urlopen(case.server.url + METRICS_PATH, timeout=10) as answer:
        text = answer.read().decode()
    accepted = spans = None
    for line in text.splitlines():
        if line.startswith("interlink_webhooks_received_total{") and 'outcome="accepted"' in line:
            accepted = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("# spans exported: "):
            spans = int(line.removeprefix("# spans exported: "))
    return {"webhooks_accepted_metric": accepted, "spans_exported": spans}


def summarize_ingest(case: IngestCase) -> dict[str, Any]:
    out: dict[str, Any] = {"description": case.description}
    if case.skipped is not None:
        out["skipped"] = case.skipped
        return out
    if case.server is not None:
        out["server"] = {"url": case.server.url, **case.server.info}
    if case.runs:
        for key in (
            "requests_per_s",
            "p50_ms",
            "p99_ms",
            "server_cpu_busy_fraction",
            "server_cpu_us_per_request",
        ):
            values = [run[key] for run in case.runs if run.get(key) is not None]
            out[key] = round(statistics.median(values), 2) if values else None
        out["non_2xx_total"] = sum(run["non_2xx"] for run in case.runs)
        out["socket_errors_total"] = sum(run["socket_errors"] for run in case.runs)
        out["pool_wrapped_requests_total"] = sum(run["pool_wrapped_requests"] for run in case.runs)
        out["all_runs_valid"] = all(run["valid"] for run in case.runs)
        out["each_repeat"] = case.runs
    if case.side_by_side:
        out["side_by_side_all_valid"] = all(run["valid"] for run in case.side_by_side)
        out["side_by_side_each_round"] = case.side_by_side
    if case.sanity is not None:
        out["checks"] = case.sanity
    if case.errors:
        out["errors"] = case.errors
    return out
