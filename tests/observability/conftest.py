"""Fixtures of the observability tests: no global tracer provider between tests, and a provider
exporting into memory for the tests that ask for ``spans``: the SDK's, and interlink's lean one
(every test that uses ``spans`` runs against both)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlink.messaging import MemoryBroker
from interlink.observability._lean import LeanTracerProvider
from tests.otel_support import reset_tracer_provider


@pytest.fixture(autouse=True)
def _no_provider() -> Iterator[None]:
    reset_tracer_provider()
    yield
    reset_tracer_provider()


@pytest.fixture(params=["sdk", "lean"])
def spans(request: pytest.FixtureRequest) -> Iterator[InMemorySpanExporter]:
    """A global provider exporting, synchronously, into memory: the SDK's or the lean one."""
    exporter = InMemorySpanExporter()
    provider: TracerProvider | LeanTracerProvider
    if request.param == "sdk":
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider = LeanTracerProvider(exporter, batch=False)
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


@pytest.fixture
def lean_provider() -> Iterator[LeanTracerProvider]:
    """interlink's own provider as the global one, as `interlink serve` sets it up (in memory)."""
    provider = LeanTracerProvider(InMemorySpanExporter(), batch=False)
    trace.set_tracer_provider(provider)
    yield provider
    provider.shutdown()


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    """A started in-memory broker, closed after the test."""
    broker = MemoryBroker()
    await broker.start()
    yield broker
    await broker.close()
