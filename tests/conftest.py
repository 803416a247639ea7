"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from interlink.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock: time moves only when the test advances it."""
    return FakeClock()
