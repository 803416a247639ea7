"""Fixtures of the observability tests: no global tracer provider between tests, and an SDK
provider exporting into memory for the tests that ask for ``spans``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


def _reset_globals() -> None:
    # What opentelemetry's own test utilities do: the API allows one provider per process.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture(autouse=True)
def _no_provider() -> Iterator[None]:
    _reset_globals()
    yield
    _reset_globals()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A global SDK provider exporting, synchronously, into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
