"""Fixtures of the service tests: a FakeUpstream, and a Service running the ops config on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.service.ops_support import HANDLED, HEALED, write_config


@pytest.fixture(autouse=True)
def _fresh_handler() -> None:
    """The ops config's handler records in module lists: empty them for each test."""
    HANDLED.clear()
    HEALED.clear()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture
async def service(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Service]:
    async with Service(load_config(write_config(tmp_path, upstream.url))) as running:
        yield running
