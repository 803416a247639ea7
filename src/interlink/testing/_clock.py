"""``FakeClock``: time that moves only when a test moves it.

Written by hand because no library fits: ``freezegun``/``time-machine`` patch
the wall clock but not asyncio's timers, and ``looptime`` replaces the whole
event loop. interlink's policies take their clock as an argument, so a small
object that implements ``interlink.core.Clock`` is all a test needs.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["FakeClock"]

T = TypeVar("T")

# Each pass lets every task that is ready run one step; a chain of wake-ups
# (timer -> task A -> task B ...) needs one pass per link.
_MAX_SETTLE_PASSES = 10_000


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A ``Clock`` for tests: ``sleep`` returns only when the test advances time.

    ``monotonic()`` starts at ``start`` (seconds) and moves only through
    ``advance``/``run``. ``wall()`` is ``monotonic()`` plus an offset that
    ``shift_wall`` changes, so tests can jump the wall clock without moving
    the monotonic one. Timers fire in time order; between two timers the
    event loop runs until every woken task has settled.
    """

    def __init__(self, start: float = 1000.0, *, wall: float = 1_767_225_600.0) -> None:
        self._now = float(start)
        self._wall_offset = wall - start
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    # -- the Clock protocol -------------------------------------------------
    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    def call_later(self, delay: float, callback: Callable[[], object]) -> _Timer:
        timer = _Timer(self._now + max(delay, 0.0), callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    # -- driving time -------------------------------------------------------
    def shift_wall(self, seconds: float) -> None:
        """Move only the wall clock (as an NTP step or a DST bug would)."""
        self._wall_offset += seconds

    @property
    def pending(self) -> int:
        """How many timers (sleeps, timeouts) are waiting to fire."""
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)

    def next_deadline(self) -> float | None:
        """The time of the earliest waiting timer, or ``None``."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    async def settle(self) -> None:
        """Let the event loop run until no task is ready (time does not move)."""
        loop = asyncio.get_running_loop()
        for _ in range(_MAX_SETTLE_PASSES):
            await asyncio.sleep(0)
            ready = getattr(loop, "_ready", None)
            if ready is not None and not ready:
                return

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer due on the way, in order."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        target = self._now + seconds
        await self.settle()
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > target:
                break
            when, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            timer.callback()
            await self.settle()
        self._now = target
        await self.settle()

    async def wait_for_sleepers(self, count: int) -> None:
        """Settle the loop, then insist that at least ``count`` timers wait.

        Use it before ``advance`` when a test must know every task has
        reached its sleep; it raises ``AssertionError`` rather than hang.
        """
        await self.settle()
        if self.pending < count:
            raise AssertionError(f"expected {count} sleepers on the clock, found {self.pending}")

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, jumping time to the next timer whenever all tasks wait.

        Like trio's autojump clock: code that sleeps for minutes finishes at
        once and sees exactly the times it asked for. Raises ``RuntimeError``
        if the work waits on something other than this clock.
        """
        task = asyncio.ensure_future(awaitable)
        try:
            while not task.done():
                await self.settle()
                if task.done():
                    break
                when = self.next_deadline()
                if when is None:
                    raise RuntimeError(
                        "FakeClock.run: the task waits on something other than the fake clock"
                    )
                await self.advance(max(when - self._now, 0.0))
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return task.result()

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._now:.6f}, pending={self.pending})"
