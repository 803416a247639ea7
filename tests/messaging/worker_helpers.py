"""Support for the worker tests: a worker fixture, a call recorder, queue checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from interlink.messaging import MessageContext, Worker
from tests.messaging.harness import Harness

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "vendor=opaque,other=1"


def scaled(harness: Harness, fake: float, real: float) -> float:
    """``fake`` seconds on a fake clock, ``real`` seconds on real time (RabbitMQ)."""
    return fake if harness.fake_time else real


@dataclass
class Call:
    """One handler call as the handler saw it."""

    body: Any
    attempt: int
    delivery_count: int
    headers: Mapping[str, str]
    message_id: str
    key: str
    at: float  # the worker clock's wall time


@dataclass
class Recorder:
    """Records every call; ``fail_until`` makes attempts before it raise ``error``."""

    harness: Harness
    fail_until: int = 0
    error: Callable[[], Exception] = lambda: RuntimeError("downstream is down")
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, body: Any, ctx: MessageContext) -> None:
        self.calls.append(
            Call(
                body=body,
                attempt=ctx.attempt,
                delivery_count=ctx.delivery_count,
                headers=dict(ctx.headers),
                message_id=ctx.message_id,
                key=ctx.idempotency_key,
                at=ctx.clock.wall(),
            )
        )
        if ctx.attempt < self.fail_until:
            raise self.error()


class Gate:
    """A handler that waits until the test opens the gate for it."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.entered: list[Any] = []
        self.cancelled: list[Any] = []
        self.finished: list[Any] = []

    async def __call__(self, body: Any, ctx: MessageContext) -> None:
        self.entered.append(body)
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.cancelled.append(body)
            raise
        self.finished.append(body)


async def settled(harness: Harness, queue: str) -> bool:
    """Nothing ready, delayed or in flight in ``queue`` (a backend may say ``None``)."""
    stats = await harness.broker.stats(queue)
    return not (stats.ready or stats.delayed or stats.in_flight)


async def depth(harness: Harness, queue: str) -> int:
    """Ready + delayed + in flight."""
    stats = await harness.broker.stats(queue)
    return (stats.ready or 0) + (stats.delayed or 0) + (stats.in_flight or 0)


@pytest.fixture
async def workers(harness: Harness) -> AsyncIterator[Callable[..., Worker]]:
    """``workers(**options)``: a Worker on the harness's current broker and clock.

    Every worker made is stopped at the end of the test (without waiting).
    """
    made: list[Worker] = []

    def make(**options: Any) -> Worker:
        options.setdefault("clock", harness.clock)
        worker = Worker(harness.broker, **options)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.stop(graceful_timeout=0)
