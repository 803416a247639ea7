"""``Bulkhead``: at most ``max_concurrent`` calls at once; the rest wait their turn or are refused.

Semantics follow resilience4j's semaphore bulkhead (``maxConcurrentCalls`` 25,
``maxWaitDuration`` 0, fair): a caller that finds every slot busy waits in a
FIFO queue for at most ``max_wait`` seconds, and is refused with
``BulkheadFullError`` when the wait is zero, the queue is full, or the wait
runs out.

asyncio runs one task at a time, so a plain counter is the semaphore: the
success path is an increment and a decrement, no ``Lock``. A freed slot is
handed straight to the oldest waiter, which keeps the queue fair (no barging
by a newcomer) and lets every decision happen without a suspension point in
between. The one moment that needs care is a waiter cancelled just after a
slot was handed to it: it passes the slot on instead of dropping it.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from interlink.core.clock import Clock, TimerHandle
from interlink.core.errors import BulkheadFullError
from interlink.resilience import _validate as check
from interlink.resilience._policy import Policy

__all__ = ["REJECTION_REASONS", "Bulkhead"]

REJECTION_REASONS = ("full", "queue_full", "timeout")
"""Every ``reason`` of a ``bulkhead.rejected`` event (and of ``BulkheadFullError``)."""

P = ParamSpec("P")
T = TypeVar("T")

# Waiters that gave up stay in the deque until a release skips them; rebuild it
# when they outnumber the live ones so a stream of time-outs cannot grow it.
_COMPACT_SLACK = 16


class Bulkhead(Policy):
    """Limit concurrent calls to ``max_concurrent`` (default 25, resilience4j's
    ``maxConcurrentCalls``).

    ``max_wait`` (seconds, default 0.0 as resilience4j's ``maxWaitDuration``):
    how long a caller may wait for a slot; 0 refuses at once, ``math.inf``
    waits without limit. ``max_waiting`` (default ``None``, unbounded): how
    many callers may wait at the same time; one more is refused at once.
    Waiters are served first come, first served. A waiter that times out or
    is cancelled leaves the queue and never holds a slot.

    Refusals raise ``BulkheadFullError`` with ``retry_after=None``: a
    bulkhead cannot know when a running call will finish, and estimating it
    would mean timing every call on the success path.

    Events (only built when someone listens): ``bulkhead.queued`` with
    ``waiting`` (queue length including this caller), and
    ``bulkhead.rejected`` with ``reason`` (``"full"``, ``"queue_full"`` or
    ``"timeout"``) and ``in_use``.

    One bulkhead belongs to one event loop; it is not for threads.
    """

    kind = "bulkhead"
    __slots__ = ("_in_use", "_queue", "_waiting", "max_concurrent", "max_wait", "max_waiting")

    def __init__(
        self,
        *,
        max_concurrent: int = 25,
        max_waiting: int | None = None,
        max_wait: float = 0.0,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.max_concurrent = check.count("Bulkhead", "max_concurrent", max_concurrent)
        self.max_waiting = (
            None
            if max_waiting is None
            else check.count("Bulkhead", "max_waiting", max_waiting, minimum=0)
        )
        self.max_wait = check.seconds(
            "Bulkhead", "max_wait", max_wait, allow_zero=True, allow_inf=True
        )
        self._in_use = 0
        self._waiting = 0
        self._queue: deque[asyncio.Future[bool]] = deque()

    @property
    def available(self) -> int:
        """Slots free right now."""
        return self.max_concurrent - self._in_use

    @property
    def in_use(self) -> int:
        """Slots held by running calls (and by waiters a slot was just handed to)."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return self._waiting

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        # While anyone waits every slot is taken (a freed slot goes to a waiter),
        # so this check alone keeps newcomers behind the queue.
        if self._in_use < self.max_concurrent:
            self._in_use += 1
        else:
            await self._wait_for_slot()
        try:
            return await fn(*args, **kwargs)
        finally:
            if self._queue:
                self._release()
            else:
                self._in_use -= 1

    async def _wait_for_slot(self) -> None:
        if self.max_wait <= 0:
            raise self._rejected("full")
        if self.max_waiting is not None and self._waiting >= self.max_waiting:
            raise self._rejected("queue_full")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        self._waiting += 1
        if self.events.active:
            self._emit("queued", waiting=self._waiting)
        timer: TimerHandle | None = None
        if self.max_wait != math.inf:
            timer = self.clock.call_later(self.max_wait, functools.partial(self._expire, future))
        try:
            granted = await future
        except asyncio.CancelledError:
            if future.cancelled():
                self._forget()
            elif future.result():
                # The slot arrived together with the cancellation: pass it on.
                self._release()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not granted:
            raise self._rejected("timeout")

    def _release(self) -> None:
        """Give a finished call's slot to the oldest live waiter, or free it."""
        queue = self._queue
        while queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(True)
                self._waiting -= 1
                return
        self._in_use -= 1

    def _expire(self, future: asyncio.Future[bool]) -> None:
        if not future.done():
            future.set_result(False)
            self._forget()

    def _forget(self) -> None:
        """A waiter left without a slot (timed out or cancelled)."""
        self._waiting -= 1
        if len(self._queue) > 2 * self._waiting + _COMPACT_SLACK:
            self._queue = deque(f for f in self._queue if not f.done())

    def _rejected(self, reason: str) -> BulkheadFullError:
        if self.events.active:
            self._emit("rejected", reason=reason, in_use=self._in_use)
        if reason == "timeout":
            detail = f"no slot freed within {self.max_wait:.3f}s"
        elif reason == "queue_full":
            detail = f"{self._waiting} callers already waiting (max_waiting={self.max_waiting})"
        else:
            detail = "and no waiting allowed (max_wait=0)"
        return BulkheadFullError(
            f"{self.name}: all {self.max_concurrent} slots busy, {detail}", policy=self.name
        )

    def __repr__(self) -> str:
        return (
            f"Bulkhead(max_concurrent={self.max_concurrent}, in_use={self._in_use},"
            f" waiting={self._waiting}, name={self.name!r})"
        )
