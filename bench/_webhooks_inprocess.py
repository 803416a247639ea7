"""The receiver driven in process: where tracing's cost on the ingest path goes.

``bench/webhooks.py`` measures tracing on the wire, where a VM's noise moves
single runs by tens of percent and where the cost cannot be split. This
drives the same apps (``_webhooks_app``: the untraced receiver, and the
traced one with its ``MetricsRecorder`` at sampling ratio 1.0 and 0.0) with
64 concurrent ASGI calls on uvloop, without HTTP or uvicorn, and reads the
CPU time of the event loop's thread per webhook, apart from the process's
other threads (SQLite's writer, the span export thread). At ratio 0.0 every
webhook takes the unsampled path: it still starts its SERVER span, makes it
current and writes a ``traceparent`` into the stored message, but records
nothing. So ``unsampled - untraced`` is what every webhook pays for tracing
being on, and ``sampled - unsampled`` what recording and exporting its two
spans add.

Run as a script (``python bench/_webhooks_inprocess.py MODE [--webhooks N]
[--cpu C]``, MODE one of ``MODES``), with ``INTERLINK_BENCH_SECRET`` and
``INTERLINK_BENCH_DB`` set as for the servers: it pins itself to CPU ``C``
(all its threads), builds the app and freezes what that made (as the
servers do), starts it (ASGI lifespan), signs ``N`` webhooks plus a
warm-up of 2,000 (1 KB JSON bodies, unique ids), sends the warm-up, then
times the ``N`` and prints one JSON line: ``loop_thread_us``,
``other_threads_us`` and ``wall_us`` per webhook, and how many answered 200.
``measure`` runs it in a subprocess per mode and repeat, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from _webhooks_app import APPS, DB_ENV, PATH, SECRET_ENV
from _webhooks_load import json_body, secret_key, sign

MODES: dict[str, str] = {
    "untraced": "interlink",
    "unsampled": "interlink_traced_unsampled",
    "sampled": "interlink_traced",
}
CONCURRENCY = 64
WARM_UP = 2_000
BODY_BYTES = 1024
RUN_SECONDS = 120.0  # a run that takes longer is stopped and reported


def _requests(count: int, prefix: str) -> list[list[tuple[bytes, bytes]]]:
    """ASGI header lists of ``count`` signed webhooks, as wrk's requests carry them."""
    key = secret_key(os.environ[SECRET_ENV])
    body = json_body(BODY_BYTES)
    stamp = str(int(time.time()))
    common = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    made = []
    for n in range(count):
        msg_id = f"{prefix}_{n}"
        made.append(
            [
                *common,
                (b"webhook-id", msg_id.encode()),
                (b"webhook-timestamp", stamp.encode()),
                (b"webhook-signature", b"v1," + sign(key, msg_id, stamp, body).encode()),
            ]
        )
    return made


async def _drive(app: Any, batch: list[list[tuple[bytes, bytes]]]) -> int:
    """Send ``batch`` through ``app``, ``CONCURRENCY`` at a time; how many answered 200."""
    body = json_body(BODY_BYTES)
    request = {"type": "http.request", "body": body, "more_body": False}
    pending = iter(batch)
    ok = 0

    async def receive() -> dict[str, Any]:
        return request

    async def caller() -> None:
        nonlocal ok
        for headers in pending:
            status = 0

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": PATH,
                "raw_path": PATH.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            }
            await app(scope, receive, send)
            ok += status == 200

    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return ok


@contextlib.asynccontextmanager
async def _started(app: Any) -> AsyncIterator[None]:
    """``app`` between ``lifespan.startup`` and ``lifespan.shutdown``, one ASGI lifespan call."""
    asked: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[str] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await answers.put(message["type"])

    lifespan = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, asked.get, send)
    )

    async def say(event: str) -> None:
        await asked.put({"type": f"lifespan.{event}"})
        answer = await answers.get()
        if answer != f"lifespan.{event}.complete":
            raise RuntimeError(f"lifespan.{event}: {answer}")

    await say("startup")
    try:
        yield
    finally:
        await say("shutdown")
        await lifespan


async def _run(factory: Callable[[], Any], webhooks: int) -> dict[str, Any]:
    app = factory()
    gc.freeze()
    async with _started(app):
        warm = _requests(WARM_UP, "warm")
        timed = _requests(webhooks, "timed")
        await _drive(app, warm)
        process, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        ok = await _drive(app, timed)
        thread = time.thread_time() - thread
        process = time.process_time() - process
        wall = time.perf_counter() - wall
    return {
        "webhooks": webhooks,
        "answered_200": ok,
        "loop_thread_us": round(thread / webhooks * 1e6, 1),
        "other_threads_us": round((process - thread) / webhooks * 1e6, 1),
        "wall_us": round(wall / webhooks * 1e6, 1),
    }


def measure(
    *,
    repeats: int,
    webhooks: int,
    cpu: int | None,
    secret: str,
    tick: Callable[[str | None], None],
) -> dict[str, Any]:
    """Each mode ``repeats`` times, interleaved (reversed every other repeat); medians.

    ``tick(what)`` before each run, ``tick(None)`` after it (progress).
    """
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    errors: list[str] = []
    order = list(MODES)
    with tempfile.TemporaryDirectory(prefix="interlink-inprocess-") as work:
        for r in range(repeats):
            for mode in order if r % 2 == 0 else order[::-1]:
                tick(f"in process {r + 1}/{repeats} {mode}")
                env = {**os.environ, SECRET_ENV: secret, DB_ENV: f"{work}/{mode}-{r}.db"}
                command = [sys.executable, str(Path(__file__)), mode]
                command += ["--webhooks", str(webhooks)]
                if cpu is not None:
                    command += ["--cpu", str(cpu)]
                try:
                    done = subprocess.run(
                        command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS
                    )
                except subprocess.TimeoutExpired:
                    errors.append(f"{mode} repeat {r + 1}: over {RUN_SECONDS:g} s")
                    continue
                finally:
                    tick(None)
                lines = done.stdout.strip().splitlines()
                if done.returncode != 0 or not lines:
                    errors.append(f"{mode} repeat {r + 1}: {done.stderr.strip()[-500:]}")
                    continue
                runs[mode].append(json.loads(lines[-1]))
    out: dict[str, Any] = {
        "method": (
            f"the bench apps driven in process by {CONCURRENCY} concurrent ASGI calls on uvloop"
            f" (no HTTP), {webhooks} signed 1 KB webhooks per run after {WARM_UP} to warm up,"
            " one process per run pinned to the server CPU; CPU time of the event loop's thread"
            " per webhook, and of the process's other threads; medians of"
            f" {repeats} interleaved repeats"
        ),
    }
    if errors:
        out["errors"] = errors
    valid = all(
        runs[mode] and all(run["answered_200"] == run["webhooks"] for run in runs[mode])
        for mode in MODES
    )
    out["valid"] = valid
    for mode in MODES:
        out[mode] = {
            key: statistics.median(run[key] for run in runs[mode]) if runs[mode] else None
            for key in ("loop_thread_us", "other_threads_us", "wall_us")
        }
        out[mode]["each_repeat_loop_thread_us"] = [run["loop_thread_us"] for run in runs[mode]]
    if valid:
        untraced = out["untraced"]["loop_thread_us"]
        unsampled = out["unsampled"]["loop_thread_us"]
        sampled = out["sampled"]["loop_thread_us"]
        out["tracing_on_us"] = round(unsampled - untraced, 1)
        out["recording_us"] = round(sampled - unsampled, 1)
        if sampled > untraced:
            out["share_of_the_cost_when_nothing_is_recorded"] = round(
                (unsampled - untraced) / (sampled - untraced), 2
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--webhooks", type=int, default=20_000)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to this CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import uvloop

    print(json.dumps(uvloop.run(_run(APPS[MODES[args.mode]], args.webhooks))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
