"""The ``harness`` fixture: every shared behaviour test runs on every backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.messaging.harness import HARNESSES, Harness

# Each backend's support module registers its harness on import; a backend
# whose module is not written yet is simply absent from the suite.
for _module in ("harness_memory", "harness_sqlite", "harness_amqp"):
    with contextlib.suppress(ModuleNotFoundError):
        __import__(f"tests.messaging.{_module}")


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A fresh, started backend; closed and cleaned after the test."""
    made = HARNESSES[str(request.param)]()
    await made.open()
    try:
        yield made
    finally:
        await made.close()
