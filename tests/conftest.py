"""Fixtures shared by every test package."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from interlink.testing import FakeClock


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``OTEL_*`` variable of the shell that runs the tests reaches them.

    interlink reads several (``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``,
    ``OTEL_TRACES_SAMPLER``...), as does the SDK; a test that is about one
    sets it itself.
    """
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock: time moves only when the test advances it."""
    return FakeClock()


# Property tests must not fail on a slow or busy machine (no per-example
# deadline), and CI explores the same examples on every run, so a red CI
# always means a change broke something, not that a new seed was drawn.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
