"""Timeouts: ``Timeout`` bounds one attempt, ``Deadline`` bounds a whole operation.

Both are cooperative, like asyncio's own: the protected coroutine is
cancelled, its ``finally`` blocks run, and the caller gets an error. Python
cannot pre-empt synchronous code, so neither can we (Polly v8 dropped its
"pessimistic" timeout for the same reason).

The deadline lives in a ``contextvars.ContextVar``: code called inside a
``Deadline`` (a nested pipeline, a retry deciding whether another attempt
fits, a hedge's attempt tasks, which copy the context) sees the time left
with ``deadline_remaining()``, and a nested deadline can only shorten it,
never extend it.

The cancel scope is our own rather than ``asyncio.timeout`` because it must
run on the injected clock, so that tests drive it with ``FakeClock``; it
follows Python 3.12's ``asyncio.timeout`` rules for telling its own
cancellation from one that came from outside (``Task.cancelling``/``uncancel``).
Once our timer has fired and no outside cancellation is pending, the outcome
is a timeout whatever the callee did next: a value returned after swallowing
the cancellation is dropped, never reported as success.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from interlink.core.clock import SYSTEM_CLOCK, Clock, MonotonicClock, TimerHandle
from interlink.core.errors import AttemptTimeoutError, DeadlineExceededError
from interlink.resilience import _validate as check
from interlink.resilience._policy import Policy

__all__ = ["Deadline", "Timeout", "current_deadline", "deadline_remaining"]

P = ParamSpec("P")
T = TypeVar("T")

_DEADLINE: ContextVar[float | None] = ContextVar("interlink_deadline", default=None)


def current_deadline() -> float | None:
    """The monotonic time (on the policies' clock) at which the current deadline passes."""
    return _DEADLINE.get()


def deadline_remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left before the current deadline, or ``None`` when there is none."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - clock.monotonic()


class _TimerQueue:
    """Expiry times of the running cancel scopes of one policy, behind one clock timer.

    A clock timer per call (``loop.call_later`` plus ``cancel``) costs ~1.5 us,
    most of a policy's budget; a heap push and pop cost ~0.15 us. So the scopes
    go into a heap of ``[when, seq, scope]`` and one timer is armed for the
    earliest. A scope that ends early only clears its slot; slots at the top
    are popped at once, so a sequential caller keeps the heap empty, and the
    heap is rebuilt when dead slots outnumber live ones.

    On the real clock the timer stays armed when the heap empties, because
    re-arming it per call would cost what the heap saves: when such a stale
    timer fires it finds nothing due and re-arms for the earliest live scope.
    Any other clock (``FakeClock``) is disarmed once idle, so a test counting
    ``clock.pending`` sees no stray timer.
    """

    __slots__ = ("_armed_at", "_clock", "_handle", "_heap", "_keep_armed", "_live", "_seq", "loop")

    def __init__(self, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        self._clock = clock
        self.loop = loop
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._live = 0
        self._handle: TimerHandle | None = None
        self._armed_at = math.inf
        self._keep_armed = isinstance(clock, MonotonicClock)

    def add(self, when: float, scope: _CancelScope) -> list[Any]:
        entry = [when, next(self._seq), scope]
        heapq.heappush(self._heap, entry)
        self._live += 1
        if when < self._armed_at:
            self._arm(when)
        return entry

    def remove(self, entry: list[Any]) -> None:
        if entry[2] is not None:
            entry[2] = None
            self._live -= 1
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if not heap:
            if not self._keep_armed and self._handle is not None:
                self._handle.cancel()
                self._handle, self._armed_at = None, math.inf
        elif len(heap) > 2 * self._live + 64:
            self._heap = heap = [slot for slot in heap if slot[2] is not None]
            heapq.heapify(heap)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self._clock.call_later(when - self._clock.monotonic(), self._fire)

    def _fire(self) -> None:
        self._handle, self._armed_at = None, math.inf
        now = self._clock.monotonic()
        heap = self._heap
        while heap:
            entry = heap[0]
            scope = entry[2]
            if scope is not None and entry[0] > now:
                self._arm(entry[0])
                return
            heapq.heappop(heap)
            if scope is not None:
                entry[2] = None
                self._live -= 1
                scope.expire()


class _CancelScope:
    """Cancel the current task at ``when`` (clock time); tell whether we did.

    Plain methods rather than ``async with``: this sits on the hot path of every
    attempt, and two coroutine objects per call are measurable there.
    """

    __slots__ = ("_cancelling", "_entry", "_queue", "_task", "expired")

    def __init__(self, when: float, queue: _TimerQueue) -> None:
        task = asyncio.current_task(queue.loop)
        if task is None:  # pragma: no cover - a coroutine always runs in a task under asyncio
            raise RuntimeError("a timeout needs to run inside an asyncio task")
        self._task = task
        self._cancelling = task.cancelling()
        self.expired = False
        self._queue = queue
        self._entry = queue.add(when, self)

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()

    def close(self) -> bool:
        """Stop the timer; True when our expiry, and nothing from outside, ended the work."""
        self._queue.remove(self._entry)
        if not self.expired:
            return False
        # Ours only if no cancellation from outside is pending as well.
        return self._task.uncancel() <= self._cancelling


class Timeout(Policy):
    """Bound one attempt to ``seconds`` (default 10 s, the per-attempt timeout of
    Microsoft's standard HTTP resilience handler; resilience4j uses 1 s, Polly 30 s).

    When a ``Deadline`` is running, the attempt gets ``min(seconds, time left)``.
    On expiry the call is cancelled, its ``finally`` runs, and ``call`` raises
    ``AttemptTimeoutError`` (a ``TimeoutError``); if the deadline was the
    tighter bound, ``DeadlineExceededError``. With no time left at all, the
    function is not called. A ``TimeoutError`` raised by the callee itself
    passes through unchanged, and a cancellation from outside stays a
    cancellation. Emits ``timeout.timed_out`` (``seconds``, ``deadline``).
    """

    kind = "timeout"
    __slots__ = ("_timers", "seconds")

    def __init__(
        self, seconds: float = 10.0, *, name: str | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.seconds = check.seconds("Timeout", "seconds", seconds, allow_zero=False)
        self._timers: _TimerQueue | None = None

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        limit = self.seconds
        now = self.clock.monotonic()
        by_deadline = False
        deadline = _DEADLINE.get()
        if deadline is not None:
            left = deadline - now
            if left <= 0:
                raise DeadlineExceededError(
                    f"{self.name}: deadline passed before the attempt could start",
                    policy=self.name,
                )
            if left < limit:
                limit, by_deadline = left, True
        queue = self._timers
        if queue is None or queue.loop is not asyncio.get_running_loop():
            queue = self._timers = _TimerQueue(self.clock, asyncio.get_running_loop())
        scope = _CancelScope(now + limit, queue)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if scope.close():
                raise self._timed_out(limit, by_deadline) from exc
            raise
        if scope.close():
            raise self._timed_out(limit, by_deadline)
        return result

    def _timed_out(self, limit: float, by_deadline: bool) -> TimeoutError:
        self._emit("timed_out", seconds=limit, deadline=by_deadline)
        if by_deadline:
            return DeadlineExceededError(
                f"{self.name}: deadline passed during an attempt after {limit:.3f}s",
                policy=self.name,
            )
        return AttemptTimeoutError(
            f"{self.name}: attempt timed out after {limit:.3f}s", policy=self.name
        )

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, name={self.name!r})"


class Deadline(Policy):
    """Bound a whole operation (every attempt and every backoff sleep) to ``seconds``
    (default 30 s, the total timeout of Microsoft's standard HTTP handler).

    Sets the deadline that ``Timeout``, ``Retry`` and ``Hedge`` inside it
    respect; a deadline already running that ends sooner wins. On expiry the
    work is cancelled and ``call`` raises ``DeadlineExceededError``. Emits
    ``deadline.exceeded`` (``seconds``).
    """

    kind = "deadline"
    __slots__ = ("_timers", "seconds")

    def __init__(
        self, seconds: float = 30.0, *, name: str | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.seconds = check.seconds("Deadline", "seconds", seconds, allow_zero=False)
        self._timers: _TimerQueue | None = None

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        deadline = self.clock.monotonic() + self.seconds
        outer = _DEADLINE.get()
        if outer is not None and outer <= deadline:
            # The running deadline is tighter and already has its timer.
            return await fn(*args, **kwargs)
        queue = self._timers
        if queue is None or queue.loop is not asyncio.get_running_loop():
            queue = self._timers = _TimerQueue(self.clock, asyncio.get_running_loop())
        token = _DEADLINE.set(deadline)
        scope = _CancelScope(deadline, queue)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if scope.close():
                raise self._exceeded() from exc
            raise
        finally:
            _DEADLINE.reset(token)
        if scope.close():
            raise self._exceeded()
        return result

    def _exceeded(self) -> DeadlineExceededError:
        self._emit("exceeded", seconds=self.seconds)
        return DeadlineExceededError(
            f"{self.name}: deadline of {self.seconds:.3f}s exceeded", policy=self.name
        )

    def __repr__(self) -> str:
        return f"Deadline({self.seconds!r}, name={self.name!r})"
