"""Waiting in tests without sleeping blindly: poll a condition until it holds, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool],
    what: str,
    within: float = 10.0,
    step: float = 0.01,
) -> None:
    """Poll ``condition`` (sync or async) until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"still not {what} after {within}s"
        await asyncio.sleep(step)
