"""Graceful shutdown (behaviour 15) on every backend, and SIGTERM in process.

On ``stop()``: fetching stops, deliveries fetched but not started go back at
once, running handlers get ``graceful_timeout`` to finish and settle, the rest
are cancelled and go back too. Nothing is lost and nothing counts as a failed
attempt. ``test_worker_crash.py`` sends a real SIGTERM to a worker process.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

from interlink.messaging import MemoryBroker, MessageContext, Worker
from interlink.testing import FakeClock
from tests.messaging import worker_helpers
from tests.messaging.harness import Harness
from tests.messaging.worker_helpers import scaled, settled

workers = worker_helpers.workers  # the fixture
Workers = Callable[..., Worker]


class TwoSpeeds:
    """Message 1 finishes when ``quick`` opens; message 2 never finishes on its own."""

    def __init__(self) -> None:
        self.quick = asyncio.Event()
        self.entered: list[int] = []
        self.finished: list[int] = []
        self.cancelled: list[int] = []

    async def __call__(self, body: Any, ctx: MessageContext) -> None:
        self.entered.append(body["n"])
        try:
            if body["n"] == 1:
                await self.quick.wait()
            else:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(body["n"])
            raise
        self.finished.append(body["n"])


async def test_stop_finishes_in_flight_work_and_gives_the_rest_back(
    harness: Harness, workers: Workers
) -> None:
    q = harness.queue()
    grace = scaled(harness, 10.0, 0.5)
    handler = TwoSpeeds()
    worker = workers(graceful_timeout=grace)
    worker.add_handler(q, handler, name="h", concurrency=2, prefetch=3)
    for n in (1, 2, 3, 4):
        await harness.broker.publish(q, {"n": n})
    await worker.start()
    await harness.run_until(lambda: sorted(handler.entered) == [1, 2], within=5)
    await harness.run_until(lambda: worker.stats()[(q, "h")].received == 3, within=5)
    started = harness.clock.monotonic()
    stopping = asyncio.ensure_future(worker.stop())
    # Message 3 was fetched but not started: given back at once.
    await harness.run_until(lambda: worker.stats()[(q, "h")].released == 1, within=1)
    handler.quick.set()  # message 1 finishes within the grace period
    await harness.run_until(lambda: worker.stats()[(q, "h")].acked == 1, within=1)
    await harness.run_until(stopping.done, within=grace + 2)
    await stopping
    elapsed = harness.clock.monotonic() - started
    assert elapsed >= grace - 0.01  # message 2 had its full grace period
    assert handler.finished == [1]
    assert handler.cancelled == [2]
    stats = worker.stats()[(q, "h")]
    assert (stats.acked, stats.released, stats.in_flight) == (1, 2, 0)
    assert not worker.running

    # Everything not finished is back, as attempt 1, for the next worker.
    seen: list[tuple[int, int]] = []

    async def handle(body: Any, ctx: MessageContext) -> None:
        seen.append((body["n"], ctx.attempt))

    after = workers()
    after.add_handler(q, handle, name="h")
    await after.start()
    await harness.run_until(lambda: len(seen) == 3, within=scaled(harness, 5, 10))
    assert sorted(seen) == [(2, 1), (3, 1), (4, 1)]
    await harness.run_until(lambda: settled(harness, q), within=5)


async def test_stop_with_nothing_running_returns_at_once(
    harness: Harness, workers: Workers
) -> None:
    q = harness.queue()
    worker = workers(graceful_timeout=scaled(harness, 3600, 3600))
    worker.add_handler(q, _noop, name="h")
    await worker.start()
    await asyncio.wait_for(worker.stop(), timeout=5)  # does not wait out the grace period
    await worker.stop()  # idempotent


async def _noop(body: Any, ctx: MessageContext) -> None:
    return None


async def test_sigterm_stops_a_running_worker_gracefully() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    worker = Worker(broker, graceful_timeout=30)
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[int] = []

    @worker.handler("jobs")
    async def job(body: Any, ctx: MessageContext) -> None:
        entered.set()
        await release.wait()
        finished.append(body["n"])

    before = signal.getsignal(signal.SIGTERM)
    await broker.publish("jobs", {"n": 1})
    running = asyncio.ensure_future(worker.run(handle_signals=True))
    await asyncio.wait_for(entered.wait(), timeout=5)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100):  # the signal arrives through the loop's wakeup fd
        await asyncio.sleep(0.001)
        if not worker.running:
            break
    assert not worker.running  # stopping: no more fetching
    release.set()
    await asyncio.wait_for(running, timeout=5)
    assert finished == [1]
    assert worker.stats()[("jobs", "jobs:job")].acked == 1
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
