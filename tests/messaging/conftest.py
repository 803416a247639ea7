"""The ``harness`` fixture: every shared behaviour test runs on every backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.messaging.harness import HARNESSES, Harness, opened

if TYPE_CHECKING:
    from tests.messaging.harness_amqp import AmqpHarness

# Each backend's support module registers its harness on import; a backend
# whose module is not written yet is simply absent from the suite.
for _module in ("harness_memory", "harness_sqlite", "harness_amqp"):
    with contextlib.suppress(ModuleNotFoundError):
        __import__(f"tests.messaging.{_module}")


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A fresh, started backend; closed and cleaned after the test."""
    async with opened(HARNESSES[str(request.param)]()) as made:
        yield made


@pytest.fixture
async def amqp() -> AsyncIterator[AmqpHarness]:
    """The RabbitMQ harness alone (skipped when RabbitMQ is not running)."""
    from tests.messaging.harness_amqp import AmqpHarness

    async with opened(AmqpHarness()) as made:
        yield made
