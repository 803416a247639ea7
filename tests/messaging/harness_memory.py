"""The memory backend in the shared suite: a named store per harness, on a ``FakeClock``."""

from __future__ import annotations

import itertools

from interlink.messaging import Broker, MemoryBroker
from interlink.testing import FakeClock
from tests.messaging.harness import Harness, register

_names = itertools.count(1)


@register
class MemoryHarness(Harness):
    """``memory://harness-N``: reopening the same name is a restart that keeps the messages."""

    name = "memory"
    fake_time = True

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = f"harness-{next(_names)}"
        self.url = f"memory://{self.store}"

    async def open(self) -> Broker:
        self.broker = MemoryBroker.from_url(self.url, clock=self.clock)
        await self.broker.start()
        return self.broker

    async def reopen(self) -> Broker:
        await self.broker.close()
        return await self.open()

    async def close(self) -> None:
        await self.broker.close()
        MemoryBroker.discard(self.store)

    async def refuse_publishes(self, queue: str) -> None:
        broker = self.broker
        assert isinstance(broker, MemoryBroker)
        broker.refuse_publishes(queue)
