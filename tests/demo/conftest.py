"""Fixtures of the demo tests: the demo traces into memory, so no provider outlives a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otel_support import reset_tracer_provider


@pytest.fixture(autouse=True)
def _no_provider() -> Iterator[None]:
    reset_tracer_provider()
    yield
    reset_tracer_provider()
