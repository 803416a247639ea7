"""What every case of ``bench/messaging.py`` shares: the message, the client shape, the phases.

Every client moves the same message (``BODY``: 1 KB of random bytes, a fresh
message id each, persistent/durable) in the same three phases on a queue of its
own, created before the phases and deleted after them:

- ``publish``: ``IN_FLIGHT`` tasks each publish one message at a time and wait
  until it is durable (a commit, a publisher confirm), until ``n`` were published;
- ``consume``: the ``n`` messages now queued are consumed with at most
  ``PREFETCH`` unsettled and each acked; the phase ends at the ``n``-th ack;
- ``end_to_end``: the consumer subscribes to the now empty queue first, then
  the clock starts, the publishers publish ``n`` more, and the phase ends when
  the ``n``-th of them was acked: publish, consume and ack of every message.

Each phase records wall seconds, this process's CPU seconds (every thread, so
a writer thread counts) and, where known, the broker server's CPU seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _messaging_clients import RawSqlite3

BODY = os.urandom(1024)
IN_FLIGHT = 100
PREFETCH = 100
PHASE_TIMEOUT = 60.0
"""A phase that has not finished by then failed (a lost message would otherwise hang it)."""

Publish = Callable[[], Awaitable[object]]
ServerCpu = Callable[[], float | None]


def no_server() -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed phase: messages, wall seconds, CPU seconds of this process and of the server."""

    messages: int
    seconds: float
    cpu_seconds: float
    server_cpu_seconds: float | None = None
    commits: int | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


class Client(ABC):
    """One way of moving messages through one broker, opened once for the whole run."""

    name: str

    @abstractmethod
    async def open(self) -> None:
        """Connect / open storage (not timed)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect, and delete the files ``open`` created."""

    def commits(self) -> int | None:
        """Transactions committed so far, where the client counts them (SQLite group commit)."""
        return None

    async def create(self, queue: str) -> None:
        """Declare ``queue`` before its phases (not timed); a no-op where publishing declares."""
        return

    def server_queues(self, queue: str) -> list[str]:
        """The RabbitMQ queues this client made for ``queue``: deleted after its repeat."""
        return []

    @abstractmethod
    def publisher(self, queue: str) -> Publish:
        """A call that publishes one ``BODY`` to ``queue`` and returns once it is durable."""

    @abstractmethod
    async def consume(self, queue: str, n: int, subscribed: asyncio.Event) -> None:
        """Consume and ack ``n`` messages (prefetch ``PREFETCH``); set ``subscribed`` once
        consuming, before the first message may arrive; return after the ``n``-th ack."""


@dataclass(slots=True)
class Case:
    """One measured thing: a raw sqlite3 loop or a client's three phases."""

    name: str
    group: str  # "sqlite" or "rabbitmq"
    messages: int
    client: Client | None = None
    raw: RawSqlite3 | None = None
    repeats: list[dict[str, Phase]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def publish_many(publish: Publish, n: int, in_flight: int = IN_FLIGHT) -> None:
    """``n`` publishes by ``in_flight`` tasks, each publishing its next once the last is durable."""
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < n:
            issued += 1
            await publish()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(in_flight, n)):
            group.create_task(worker())


class Meter:
    """Wall, process CPU and server CPU seconds around a phase."""

    __slots__ = ("_commits", "_count", "_cpu", "_server", "_server_cpu", "_wall")

    def __init__(self, server: ServerCpu, commits: Callable[[], int | None] = lambda: None) -> None:
        self._server = server
        self._count = commits
        self._wall = 0.0
        self._cpu = 0.0
        self._server_cpu: float | None = None
        self._commits: int | None = None

    def start(self) -> None:
        self._server_cpu = self._server()
        self._commits = self._count()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def stop(self, messages: int) -> Phase:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        after = self._server()
        server = None if after is None or self._server_cpu is None else after - self._server_cpu
        commits = self._count()
        if commits is not None and self._commits is not None:
            commits -= self._commits
        return Phase(messages, wall, cpu, server, commits)


async def publish_phase(client: Client, queue: str, n: int, server: ServerCpu) -> Phase:
    publish = client.publisher(queue)
    meter = Meter(server, client.commits)
    meter.start()
    async with asyncio.timeout(PHASE_TIMEOUT):
        await publish_many(publish, n)
    return meter.stop(n)


async def consume_phase(client: Client, queue: str, n: int, server: ServerCpu) -> Phase:
    meter = Meter(server, client.commits)
    meter.start()
    async with asyncio.timeout(PHASE_TIMEOUT):
        await client.consume(queue, n, asyncio.Event())
    return meter.stop(n)


async def end_to_end_phase(client: Client, queue: str, n: int, server: ServerCpu) -> Phase:
    publish = client.publisher(queue)
    subscribed = asyncio.Event()
    meter = Meter(server, client.commits)
    async with asyncio.timeout(PHASE_TIMEOUT):
        consumer = asyncio.create_task(client.consume(queue, n, subscribed))
        try:
            waiting = asyncio.create_task(subscribed.wait())
            await asyncio.wait({consumer, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if consumer.done():  # ended (failed) before it subscribed
                consumer.result()
                raise RuntimeError(f"{client.name}: the consumer ended before subscribing")
            meter.start()
            await publish_many(publish, n)
            await consumer
        finally:
            if not consumer.done():
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
    return meter.stop(n)


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of ``pid`` so far; None where /proc is absent or denied."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_process(*needles: bytes) -> int | None:
    """The PID of the first process whose command line holds every one of ``needles``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if all(needle in cmdline for needle in needles):
            return int(entry.name)
    return None
