"""Per-key ordering under concurrency (behaviour 23) and back-pressure (behaviour 24)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from interlink.messaging import MessageContext, Worker
from tests.messaging import worker_helpers
from tests.messaging.harness import Harness
from tests.messaging.worker_helpers import Gate, scaled, settled

workers = worker_helpers.workers  # the fixture
Workers = Callable[..., Worker]


class KeyedHandler:
    """Records (key, n, attempt) in handling order; A1's first attempt fails."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.log: list[tuple[str, int, int]] = []
        self.active: Counter[str] = Counter()
        self.max_per_key = 0
        self.max_total = 0

    async def __call__(self, body: Any, ctx: MessageContext) -> None:
        key, n = body["key"], body["n"]
        self.active[key] += 1
        self.max_per_key = max(self.max_per_key, self.active[key])
        self.max_total = max(self.max_total, sum(self.active.values()))
        try:
            self.log.append((key, n, ctx.attempt))
            await ctx.clock.sleep(scaled(self.harness, 0.5, 0.05))  # long enough to overlap
            if (key, n, ctx.attempt) == ("A", 1, 1):
                raise RuntimeError("A1 fails once")
        finally:
            self.active[key] -= 1

    def of(self, key: str) -> list[tuple[int, int]]:
        return [(n, attempt) for k, n, attempt in self.log if k == key]


async def _run_keys(harness: Harness, workers: Workers, ordering: str) -> tuple[KeyedHandler, int]:
    q = harness.queue()
    worker = workers()
    handler = KeyedHandler(harness)
    worker.add_handler(
        q,
        handler,
        name="h",
        concurrency=4,
        ordering=ordering,
        retry=[scaled(harness, 5.0, 0.5)],
    )
    for n in (1, 2, 3):
        for key in ("A", "B"):
            await harness.broker.publish(q, {"key": key, "n": n}, key=key)
    await worker.start()
    await harness.run_until(
        lambda: worker.stats()[(q, "h")].acked == 6, within=scaled(harness, 30, 10), step=0.1
    )
    await harness.run_until(lambda: settled(harness, q), within=5)
    assert handler.max_per_key == 1  # one message of a key at a time, always
    assert handler.max_total >= 2  # different keys do run side by side
    assert handler.of("B") == [(1, 1), (2, 1), (3, 1)]
    return handler, worker.stats()[(q, "h")].released


async def test_block_keeps_a_keys_order_while_one_of_its_messages_is_in_retry(
    harness: Harness, workers: Workers
) -> None:
    handler, released = await _run_keys(harness, workers, "block")
    assert handler.of("A") == [(1, 1), (1, 2), (2, 1), (3, 1)]
    assert released >= 2  # A2 and A3 were given back until A1's retry was due
    # B was not held back by A's retry.
    assert handler.log.index(("B", 3, 1)) < handler.log.index(("A", 1, 2))


async def test_continue_lets_a_keys_later_messages_pass_the_one_in_retry(
    harness: Harness, workers: Workers
) -> None:
    handler, released = await _run_keys(harness, workers, "continue")
    assert handler.of("A") == [(1, 1), (2, 1), (3, 1), (1, 2)]
    assert released == 0


async def test_a_slow_handler_stops_fetching_at_the_prefetch_bound(
    harness: Harness, workers: Workers
) -> None:
    """Behaviour 24: at most ``prefetch`` deliveries held; delayed messages stay put."""
    q = harness.queue()
    gate = Gate()
    worker = workers()
    worker.add_handler(q, gate, name="h", concurrency=2, prefetch=3)
    for n in range(10):
        await harness.broker.publish(q, {"n": n})
    for n in range(5):
        await harness.broker.publish(q, {"late": n}, delay=scaled(harness, 3600, 60))
    await worker.start()
    await harness.run_until(lambda: len(gate.entered) == 2, within=5)
    await harness.run_until(lambda: worker.stats()[(q, "h")].received == 3, within=5)
    start = harness.clock.monotonic()
    await harness.run_until(
        lambda: harness.clock.monotonic() - start >= scaled(harness, 5, 0.5), within=10
    )
    assert worker.stats()[(q, "h")].received == 3  # nothing more was fetched
    stats = await harness.broker.stats(q)
    if stats.in_flight is not None:
        assert stats.in_flight == 3
    if stats.delayed is not None:
        assert stats.delayed == 5
    gate.opened.set()
    await harness.run_until(lambda: worker.stats()[(q, "h")].acked == 10, within=10)
    assert worker.stats()[(q, "h")].received == 10  # the delayed ones were not fetched
    assert len(gate.entered) == 10


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_default_prefetch_equals_concurrency(
    harness: Harness, workers: Workers, concurrency: int
) -> None:
    q = harness.queue()
    gate = Gate()
    worker = workers()
    worker.add_handler(q, gate, name="h", concurrency=concurrency)
    for n in range(6):
        await harness.broker.publish(q, {"n": n})
    await worker.start()
    await harness.run_until(lambda: len(gate.entered) == concurrency, within=5)
    await asyncio.sleep(0)
    start = harness.clock.monotonic()
    await harness.run_until(
        lambda: harness.clock.monotonic() - start >= scaled(harness, 2, 0.3), within=5
    )
    assert worker.stats()[(q, "h")].received == concurrency
    gate.opened.set()
    await harness.run_until(lambda: worker.stats()[(q, "h")].acked == 6, within=10)
