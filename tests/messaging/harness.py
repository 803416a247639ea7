"""What the shared behaviour suite needs from each backend, and the registry of backends.

Each backend's test support module (``harness_memory``, ``harness_sqlite``,
``harness_amqp``) defines a ``Harness`` subclass and registers it with
``register``; ``tests/messaging/conftest.py`` parametrises the ``harness``
fixture over every registered backend, so one test runs on all three.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ClassVar, TypeVar

from interlink.core.clock import Clock
from interlink.messaging import Broker
from interlink.testing import FakeClock

_counter = itertools.count(1)

H = TypeVar("H", bound="Harness")


async def holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    """Whether ``condition()`` holds now, awaiting it when it answers with an awaitable."""
    result = condition()
    if not isinstance(result, bool):
        result = await result
    return result


class Harness(ABC):
    """One backend, opened fresh for one test.

    ``broker`` is started; ``clock`` is a ``FakeClock`` when ``fake_time`` (memory,
    SQLite) and the real clock otherwise (RabbitMQ). Tests never sleep: they
    use ``run_until`` with a budget of (fake or real) seconds.
    """

    name: ClassVar[str]
    fake_time: ClassVar[bool]
    broker: Broker
    clock: Clock

    @abstractmethod
    async def open(self) -> Broker:
        """Open a fresh broker (fresh storage, or unique queue names) and return it."""

    @abstractmethod
    async def reopen(self) -> Broker:
        """Close the broker and open a new one over the same storage: a restart."""

    @abstractmethod
    async def close(self) -> None:
        """Close the broker and remove what the test created."""

    @abstractmethod
    async def refuse_publishes(self, queue: str) -> None:
        """From now on the backend itself refuses writes to ``queue``.

        Publishing to it raises ``PublishError``; settling a delivery into it
        (a retry to it, a dead letter into it) raises ``DeliveryError``.
        """

    def queue(self, stem: str = "q") -> str:
        """A queue name unique to this test run."""
        return f"t{next(_counter)}.{stem}"

    async def run_until(
        self, condition: Callable[[], bool | Awaitable[bool]], *, within: float, step: float = 0.05
    ) -> None:
        """Let (fake or real) time pass until ``condition()`` holds; fail after ``within`` seconds.

        With a fake clock time moves in ``step`` increments, so a delay of N
        seconds fires at N on the fake clock however long the test takes in
        real time; on a real clock it polls every ``step`` with a real budget.
        """
        spent = 0.0
        while True:
            if await holds(condition):
                return
            if spent >= within:
                raise AssertionError(
                    f"condition still false after {within}s on the {self.name} backend"
                )
            if isinstance(self.clock, FakeClock):
                await self.clock.advance(step)
                # let consumers wake and the storage thread answer between steps
                for _ in range(5):
                    await asyncio.sleep(0)
                await asyncio.sleep(0.001)
            else:
                await asyncio.sleep(step)
            spent += step


HARNESSES: dict[str, type[Harness]] = {}


def register(cls: type[Harness]) -> type[Harness]:
    """Class decorator: add a backend to the shared suite."""
    HARNESSES[cls.name] = cls
    return cls


@asynccontextmanager
async def opened(made: H) -> AsyncIterator[H]:
    """``made``, opened; closed on the way out (the body of every harness fixture)."""
    await made.open()
    try:
        yield made
    finally:
        await made.close()
