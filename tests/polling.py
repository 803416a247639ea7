"""Waiting in tests without sleeping blindly: poll a condition until it holds, with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], Awaitable[object] | object],
    what: str | Callable[[], str],
    within: float = 10.0,
    step: float = 0.01,
) -> None:
    """Poll ``condition`` (sync or async) until it is true; fail after ``within`` seconds.

    ``what`` names what is awaited; a callable is asked only on failure (say, for the
    output so far)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"still not {said} after {within}s")
        await asyncio.sleep(step)


def wait_until(condition: Callable[[], object], what: str, within: float = 10.0) -> None:
    """``eventually`` for a test with no event loop: poll ``condition`` until it holds.

    For what another thread does (an export thread, a server in a thread).
    """
    deadline = time.monotonic() + within
    pause = threading.Event()  # never set: a wait that any thread's progress does not need
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {within}s"
        pause.wait(0.01)
