"""Time, injected: every policy takes ``clock=`` so tests can drive time by hand.

``Clock`` is the protocol; ``MonotonicClock`` (the default, ``SYSTEM_CLOCK``)
reads ``time.monotonic`` for durations and ``time.time`` only where a wall
time is needed (an HTTP date in ``Retry-After``). ``interlink.testing.FakeClock``
implements the same protocol with time that moves only when a test says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "MonotonicClock", "TimerHandle"]


class TimerHandle(Protocol):
    """A scheduled callback that can still be called off."""

    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """The time source of a policy.

    ``monotonic()`` gives seconds on a clock that never goes back (durations,
    open periods, windows); ``wall()`` gives Unix seconds (only for dates sent by
    servers); ``sleep`` suspends the caller; ``call_later`` runs a plain callback
    on the event loop after a delay (used for timeouts).
    """

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...


class MonotonicClock:
    """The real clock: ``time.monotonic``, ``time.time`` and the running event loop."""

    __slots__ = ()

    # The C functions themselves, not methods calling them: one Python frame
    # less per read, and the breaker and the retry read the clock on every call.
    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    def __repr__(self) -> str:
        return "MonotonicClock()"


SYSTEM_CLOCK: Clock = MonotonicClock()
"""The process-wide real clock every policy uses unless given another."""
