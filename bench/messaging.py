"""Durable messages per second through interlink's brokers, beside the raw baselines.

Run with ``make bench`` (or ``.venv/bin/python bench/messaging.py``). Every
message is 1 KB, persistent/durable and carries a fresh message id; every
client is opened and warmed up once, then each case runs ``--repeats`` times
(3), the cases interleaved and every other repeat in reverse order, so a burst
of other work on a shared machine hits both sides of a comparison or neither.
A case's figures are medians over its repeats; each comparison is made within
each repeat (both sides ran back to back), then its median is compared to the
target (``_messaging_report``).

Cases (``_messaging_clients`` says exactly what each does):

- ``raw_sqlite3_commit_each`` / ``raw_sqlite3_batch_100``: sqlite3 in a
  worker thread, WAL, ``synchronous=FULL``, one commit per message (the floor)
  and per 100 messages (the ceiling); inserts only.
- ``interlink_sqlite``: ``sqlite:///<temp dir>/interlink.db``
  (``synchronous=FULL``, its default; group commit) through the ``Broker``
  API; ``interlink_sqlite_worker``: the same through the ``Worker`` runtime
  (a handler that does nothing, concurrency and prefetch 100, no inbox).
- ``aio_pika_quorum`` (the baseline: interlink declares quorum queues) and
  ``aio_pika_classic``: raw aio-pika, publisher confirms, 100 in flight,
  prefetch 100, manual acks, durable queue, persistent messages.
- ``interlink_rabbitmq``: ``RabbitBroker`` through the ``Broker`` API, same
  shape; ``interlink_rabbitmq_worker``: through the ``Worker`` runtime.
- ``faststream``: FastStream's ``RabbitBroker`` on the same RabbitMQ, same shape.

Every queue-backed case runs three phases on a fresh queue (``_messaging_common``):
``publish`` (100 publishers, each waiting until its message is durable),
``consume`` (drain them, prefetch 100, ack each) and ``end_to_end`` (the
consumer subscribed first, then ``n`` more published; done at the ``n``-th ack).

The targets (issue 4), all from this run: SQLite end to end >= 5,000 msgs/s,
measured through the ``Broker`` API (publish, consume, ack: the issue's
definition, in the same shape as the RabbitMQ cases, with nothing of the
runtime's own choices in it; the ``Worker`` figure is reported beside it);
SQLite publish >= 10x raw sqlite3 committing once per message; interlink
RabbitMQ end to end >= 0.80 of raw aio-pika on a quorum queue, and > FastStream.

RabbitMQ at ``--amqp-url`` (``amqp://guest:guest@127.0.0.1:5672/``): if it does
not answer, its cases and targets are reported as skipped with the reason.
Every queue this run declares is named ``interlink-bench-<run id>-...`` and
deleted after its repeat, and whatever is left at the end (as ``rabbitmqctl``
lists it, where it is available), whatever happens; the SQLite files live in a
temporary directory that is removed. The RabbitMQ server runs on this
machine's cores too: the figures compare clients on one machine, they do not
size a server. Nothing is pinned by default (``Placement`` says why).

JSON goes to stdout and to ``bench/results/messaging.json``, with the machine
(CPUs, load and CPU/IO pressure before and after, versions); a summary table
and the verdicts go to stderr, and progress too when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from rich.console import Console
from rich.progress import Progress

from _messaging_clients import AioPika, FastStream, InterlinkBroker, InterlinkWorker, RawSqlite3
from _messaging_common import (
    BODY,
    IN_FLIGHT,
    PREFETCH,
    Case,
    Client,
    Phase,
    ServerCpu,
    consume_phase,
    describe,
    end_to_end_phase,
    find_process,
    no_server,
    process_cpu_seconds,
    publish_phase,
)
from _messaging_report import print_summary, summarize, targets
from _report import chosen, machine_facts, pressure, progress_bar, report

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "messaging.json"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Messages per timed phase, sized so the whole run (3 repeats, every case, warm-ups) takes
# 70-90 s on the two-core machine it was written on: each phase runs ~0.5-1.5 s at the
# rates measured there (SQLite 2.5k/s one commit per row, 25k/s batched, interlink
# 6-20k/s; RabbitMQ 1-3k/s with the server on the same two cores).
MESSAGES = {
    "raw_sqlite3_commit_each": 2_000,
    "raw_sqlite3_batch_100": 20_000,
    "sqlite": 8_000,
    "rabbitmq": 1_500,
}
WARM_UP_MESSAGES = 200

PACKAGES = ("interlink", "aio-pika", "aiormq", "pamqp", "faststream", "fast-depends")


# --- the cases -----------------------------------------------------------------------------


async def _rabbitmq_version(url: str) -> tuple[str | None, str | None]:
    """(server version, None), or (None, why RabbitMQ cannot be used)."""
    try:
        connection = await asyncio.wait_for(aio_pika.connect(url), timeout=10)
    except Exception as exc:
        return None, f"RabbitMQ at {url.split('@')[-1]} is not reachable: {describe(exc)}"
    try:
        transport = connection.transport
        server = transport.connection.server_properties.get("version") if transport else None
        return (server.decode() if isinstance(server, bytes) else str(server)), None
    finally:
        await connection.close()


def _worker_available() -> str | None:
    """None when the worker runtime is importable; else why not."""
    try:
        from interlink.messaging import Worker  # noqa: F401
    except ImportError as exc:
        return f"the worker runtime is not available: {exc}"
    return None


def build_cases(settings: Settings, workdir: Path, rabbitmq_down: str | None) -> list[Case]:
    scale = settings.scale

    def count(key: str, multiple: int = 1) -> int:
        return max(multiple, int(MESSAGES[key] * scale) // multiple * multiple)

    db = workdir / "interlink.db"
    cases = [
        Case(
            "raw_sqlite3_commit_each",
            "sqlite",
            count("raw_sqlite3_commit_each"),
            raw=RawSqlite3(workdir / "raw-commit-each.db", 1),
        ),
        Case(
            "raw_sqlite3_batch_100",
            "sqlite",
            count("raw_sqlite3_batch_100", 100),
            raw=RawSqlite3(workdir / "raw-batch-100.db", 100),
        ),
        Case(
            "interlink_sqlite",
            "sqlite",
            count("sqlite"),
            InterlinkBroker("interlink_sqlite", f"sqlite:///{db}", cleanup=[db]),
        ),
    ]
    worker_missing = _worker_available()
    worker_db = workdir / "interlink-worker.db"
    cases.append(
        Case(
            "interlink_sqlite_worker",
            "sqlite",
            count("sqlite"),
            None
            if worker_missing
            else InterlinkWorker("interlink_sqlite_worker", f"sqlite:///{worker_db}", [worker_db]),
            skipped=worker_missing,
        )
    )
    url, n = settings.amqp_url, count("rabbitmq")
    rabbit = [
        Case("aio_pika_quorum", "rabbitmq", n, AioPika("aio_pika_quorum", url, "quorum")),
        Case("interlink_rabbitmq", "rabbitmq", n, InterlinkBroker("interlink_rabbitmq", url)),
        Case("faststream", "rabbitmq", n, FastStream("faststream", url)),
        Case("aio_pika_classic", "rabbitmq", n, AioPika("aio_pika_classic", url, "classic")),
        Case(
            "interlink_rabbitmq_worker",
            "rabbitmq",
            n,
            None if worker_missing else InterlinkWorker("interlink_rabbitmq_worker", url),
            skipped=worker_missing,
        ),
    ]
    for case in rabbit:
        if rabbitmq_down:
            case.skipped = rabbitmq_down
    cases.extend(rabbit)
    return [case for case in cases if case.name in settings.names]


# --- running -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run: which cases, repeats, message-count scale, RabbitMQ URL."""

    names: list[str]
    repeats: int
    scale: float
    amqp_url: str
    pin: bool


class Placement:
    """Where this process runs: with ``--pin`` (and two CPUs or more), on the first CPU for
    the RabbitMQ cases and anywhere for the SQLite ones, whose writer thread needs a core.

    Off by default: the RabbitMQ clients are one thread each, but the server
    (a separate process, left alone) runs its schedulers on every core, and on
    the two-core machine this was written on, pinning the client left it less
    busy (0.73-0.77 of a core against 0.83-0.91) and its figures no steadier
    (spread over repeats as large either way), unlike ``bench/client.py``'s
    upstream, which it pins because it owns it.
    """

    def __init__(self, *, pin: bool) -> None:
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._all = set(usable)
        self._one = {usable[0]} if pin and len(usable) >= 2 else None

    def describe(self) -> str:
        if self._one is None:
            return "not pinned: the scheduler places this process and the RabbitMQ server"
        return (
            f"RabbitMQ cases: this process pinned to CPU {min(self._one)}, the RabbitMQ server"
            " not pinned; SQLite cases: not pinned"
        )

    def place(self, group: str) -> None:
        if self._one is not None:
            os.sched_setaffinity(0, self._one if group == "rabbitmq" else self._all)

    def free(self) -> None:
        if self._one is not None:
            os.sched_setaffinity(0, self._all)


class Run:
    """One run: its id (in every queue name), temp dir, the RabbitMQ server's CPU, and an
    aio-pika connection of its own that deletes each repeat's queues once it is done."""

    def __init__(self, workdir: Path, server: ServerCpu, amqp_url: str | None) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.workdir = workdir
        self.rabbitmq_cpu = server
        self.amqp_url = amqp_url
        self.declared: set[str] = set()
        self.problems: list[str] = []
        self._admin: aio_pika.abc.AbstractConnection | None = None

    @property
    def prefix(self) -> str:
        return f"interlink-bench-{self.id}"

    def queue(self, case: Case, label: str) -> str:
        return f"{self.prefix}-{case.name}-{label}"

    async def drop(self, names: list[str]) -> None:
        """Delete these RabbitMQ queues (deleting a missing queue is not an error)."""
        self.declared.update(names)
        if not names or self.amqp_url is None:
            return
        try:
            if self._admin is None or self._admin.is_closed:
                self._admin = await asyncio.wait_for(aio_pika.connect(self.amqp_url), 10)
            for name in names:
                channel = await self._admin.channel()
                try:
                    await channel.queue_delete(name)
                    self.declared.discard(name)
                finally:
                    if not channel.is_closed:
                        await channel.close()
        except Exception as exc:
            self.problems.append(f"deleting queues {names}: {describe(exc)}")

    async def sweep(self) -> None:
        """Delete whatever queue of this run is left: those a repeat could not delete and any
        ``rabbitmqctl list_queues`` shows under this run's prefix; then disconnect."""
        if self.amqp_url is None:
            return
        listed = await _rabbitmqctl_queues()
        left = self.declared | {name for name in listed if name.startswith(self.prefix)}
        self.declared.clear()
        await self.drop(sorted(left))
        if self._admin is not None:
            await self._admin.close()


async def run_repeat(run: Run, case: Case, label: str, n: int) -> dict[str, Phase]:
    """One repeat of ``case`` (``n`` messages a phase); a raw loop or the three phases."""
    gc.collect()
    if case.raw is not None:
        return {"publish": await case.raw.publish(n)}
    client = case.client
    assert client is not None
    server = run.rabbitmq_cpu if case.group == "rabbitmq" else no_server
    queue = run.queue(case, label)
    run.declared.update(client.server_queues(queue))
    try:
        await client.create(queue)
        return {
            "publish": await publish_phase(client, queue, n, server),
            "consume": await consume_phase(client, queue, n, server),
            "end_to_end": await end_to_end_phase(client, queue, n, server),
        }
    finally:
        await run.drop(client.server_queues(queue))


async def measure(
    run: Run, cases: list[Case], repeats: int, placement: Placement, progress: Progress
) -> None:
    live = [case for case in cases if case.skipped is None]
    task = progress.add_task("opening", total=len(live) * (repeats + 1))
    for case in live:
        progress.update(task, description=f"open + warm up {case.name}")
        placement.place(case.group)
        try:
            opening = case.raw or case.client
            assert opening is not None  # only a skipped case has neither
            await opening.open()
            await run_repeat(run, case, "warm-up", min(WARM_UP_MESSAGES, case.messages))
        except Exception as exc:
            case.skipped = f"could not open or warm up: {describe(exc)}"
        progress.advance(task)
    for r in range(repeats):
        order = live if r % 2 == 0 else list(reversed(live))
        for case in order:
            progress.update(task, description=f"repeat {r + 1}/{repeats} {case.name}")
            placement.place(case.group)
            if case.skipped is None:
                try:
                    case.repeats.append(await run_repeat(run, case, f"r{r + 1}", case.messages))
                except Exception as exc:
                    case.errors.append(f"repeat {r + 1}: {describe(exc)}")
            progress.advance(task)


async def close_all(run: Run, cases: list[Case]) -> list[str]:
    """Close every client, then delete every queue of this run still there; what went wrong."""
    for case in cases:
        if case.client is not None:
            case.facts.update(_client_facts(case.client))
        closing = case.raw or case.client
        if closing is not None:
            try:
                await closing.close()
            except Exception as exc:
                run.problems.append(f"closing {case.name}: {describe(exc)}")
    await run.sweep()
    return run.problems


def _client_facts(client: Client) -> dict[str, Any]:
    broker = getattr(client, "broker", None)
    facts: dict[str, Any] = {}
    synchronous = getattr(broker, "synchronous", None)
    if isinstance(synchronous, str) and synchronous:
        facts["sqlite_synchronous"] = synchronous
    return facts


async def _rabbitmqctl_queues() -> list[str]:
    """Queue names ``rabbitmqctl list_queues`` reports ([] when it is absent or fails)."""
    if shutil.which("rabbitmqctl") is None:
        return []
    try:
        process = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    except (OSError, TimeoutError):
        return []
    return [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]


def machine(
    workdir: Path,
    rabbitmq: str | None,
    load: tuple[float, float, float],
    before: Any,
    placement: str,
) -> dict[str, Any]:
    return {
        **machine_facts(load, before, PACKAGES),
        "rabbitmq_server_version": rabbitmq,
        "temp_dir": str(workdir.parent),
        "event_loop": "asyncio (default policy)",
        "shared_cores": (
            "this process, its SQLite writer thread and the RabbitMQ server share the machine's"
            f" cores (and whatever else runs on it); {placement}"
        ),
    }


async def main_async(settings: Settings) -> dict[str, Any]:
    console = Console(stderr=True)
    load = os.getloadavg()
    before = pressure()
    server_version, rabbitmq_down = await _rabbitmq_version(settings.amqp_url)
    beam = find_process(b"beam.smp", b"\0rabbit\0boot\0") if rabbitmq_down is None else None

    def rabbitmq_cpu() -> float | None:
        return process_cpu_seconds(beam) if beam is not None else None

    placement = Placement(pin=settings.pin)
    cleanup: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="interlink-bench-"))
    try:
        run = Run(workdir, rabbitmq_cpu, None if rabbitmq_down else settings.amqp_url)
        cases = build_cases(settings, workdir, rabbitmq_down)
        started = time.perf_counter()
        with progress_bar(console) as progress:
            try:
                await measure(run, cases, settings.repeats, placement, progress)
            finally:
                placement.free()
                cleanup = await close_all(run, cases)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    by_name = {case.name: case for case in cases}
    result: dict[str, Any] = {
        "benchmark": (
            "durable 1 KB messages: publish (each waits until durable), consume, ack;"
            f" {IN_FLIGHT} publishes in flight, prefetch {PREFETCH}"
        ),
        "machine": machine(workdir, server_version, load, before, placement.describe()),
        "repeats": settings.repeats,
        "message_bytes": len(BODY),
        "statistic": (
            "median over repeats of messages/s; spread_percent = (max - min) / median of the"
            " repeats' msgs/s; this process's CPU (all threads) per message and busy fraction"
            " (1.0 = one core); the RabbitMQ server's CPU busy fraction; SQLite messages per"
            " commit (group commit)"
        ),
        "rabbitmq": {"url": settings.amqp_url.split("@")[-1], "skipped": rabbitmq_down},
        "measuring_seconds": round(elapsed, 1),
        "cases": {case.name: summarize(case) for case in cases},
    }
    result["targets"] = targets(by_name)
    result["cleanup_problems"] = cleanup
    print_summary(console, result)
    return result


CASE_NAMES = (
    "raw_sqlite3_commit_each",
    "raw_sqlite3_batch_100",
    "interlink_sqlite",
    "interlink_sqlite_worker",
    "aio_pika_quorum",
    "interlink_rabbitmq",
    "faststream",
    "aio_pika_classic",
    "interlink_rabbitmq_worker",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats per case (3)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every message count by this (1.0)"
    )
    parser.add_argument("--amqp-url", default=AMQP_URL, help=f"RabbitMQ ({AMQP_URL})")
    parser.add_argument(
        "--cases",
        default=",".join(CASE_NAMES),
        help=f"comma-separated subset of {', '.join(CASE_NAMES)} (all)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin this process to the first CPU during the RabbitMQ cases (off: see Placement)",
    )
    args = parser.parse_args(argv)
    names = chosen(parser, args.cases, CASE_NAMES, "cases")
    if args.repeats < 1 or args.scale <= 0:
        parser.error("--repeats must be >= 1 and --scale > 0")
    settings = Settings(names, args.repeats, args.scale, args.amqp_url, args.pin)
    return report(asyncio.run(main_async(settings)), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
