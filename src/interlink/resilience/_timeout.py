"""Timeouts: ``Timeout`` bounds one attempt, ``Deadline`` bounds a whole operation.

Both are cooperative, like asyncio's own: the protected coroutine is
cancelled, its ``finally`` blocks run, and the caller gets an error. Python
cannot pre-empt synchronous code, so neither can we (Polly v8 dropped its
"pessimistic" timeout for the same reason).

The deadline lives in a ``contextvars.ContextVar``: code called inside a
``Deadline`` (a nested pipeline, a retry deciding whether another attempt
fits) sees the time left with ``deadline_remaining()``, and a nested
deadline can only shorten it, never extend it.

The cancel scope is our own rather than ``asyncio.timeout`` because it must
run on the injected clock, so that tests drive it with ``FakeClock``; it
follows ``asyncio.timeout``'s rules for telling its own cancellation from
one that came from outside (``Task.cancelling``/``uncancel``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import ParamSpec, TypeVar

from interlink.core.clock import SYSTEM_CLOCK, Clock, TimerHandle
from interlink.core.errors import AttemptTimeoutError, ConfigError, DeadlineExceededError
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


class _CancelScope:
    """Cancel the current task after ``delay`` seconds on ``clock``; note whether we did."""

    __slots__ = ("_cancelling", "_clock", "_delay", "_handle", "_task", "expired")

    def __init__(self, delay: float, clock: Clock) -> None:
        self._delay = delay
        self._clock = clock
        self.expired = False

    async def __aenter__(self) -> _CancelScope:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a coroutine always runs in a task under asyncio
            raise RuntimeError("a timeout needs to run inside an asyncio task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle: TimerHandle = self._clock.call_later(self._delay, self._expire)
        return self

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        if self.expired:
            # Ours only if no cancellation from outside is pending as well.
            ours = self._task.uncancel() <= self._cancelling
            if ours and (exc_type is asyncio.CancelledError or exc_type is None):
                # None: the callee swallowed our cancellation and returned; a
                # result that arrives after the timeout is still a timeout.
                raise TimeoutError


class Timeout(Policy):
    """Bound one attempt to ``seconds`` (default 10 s, the per-attempt timeout of
    Microsoft's standard HTTP resilience handler; resilience4j uses 1 s, Polly 30 s).

    When a ``Deadline`` is running, the attempt gets ``min(seconds, time left)``.
    On expiry the call is cancelled, its ``finally`` runs, and ``call`` raises
    ``AttemptTimeoutError`` (a ``TimeoutError``); if the deadline was the
    tighter bound, ``DeadlineExceededError``. With no time left at all, the
    function is not called.
    """

    kind = "timeout"
    __slots__ = ("seconds",)

    def __init__(
        self, seconds: float = 10.0, *, name: str | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(name=name, clock=clock)
        if not seconds > 0:
            raise ConfigError(f"Timeout seconds must be > 0, got {seconds!r}")
        self.seconds = float(seconds)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        limit = self.seconds
        by_deadline = False
        deadline = _DEADLINE.get()
        if deadline is not None:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise DeadlineExceededError(
                    f"{self.name}: deadline passed before the attempt could start",
                    policy=self.name,
                )
            if left < limit:
                limit, by_deadline = left, True
        scope = _CancelScope(limit, self.clock)
        try:
            async with scope:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            if not scope.expired:
                raise  # the callee's own TimeoutError, not ours
            self._emit("timed_out", seconds=limit, deadline=by_deadline)
            if by_deadline:
                raise DeadlineExceededError(
                    f"{self.name}: deadline passed during an attempt after {limit:.3f}s",
                    policy=self.name,
                ) from exc
            raise AttemptTimeoutError(
                f"{self.name}: attempt timed out after {limit:.3f}s", policy=self.name
            ) from exc

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, name={self.name!r})"


class Deadline(Policy):
    """Bound a whole operation (every attempt and every backoff sleep) to ``seconds``
    (default 30 s, the total timeout of Microsoft's standard HTTP handler).

    Sets the deadline that ``Timeout``, ``Retry`` and ``Hedge`` inside it
    respect; a deadline already running that ends sooner wins. On expiry the
    work is cancelled and ``call`` raises ``DeadlineExceededError``.
    """

    kind = "deadline"
    __slots__ = ("seconds",)

    def __init__(
        self, seconds: float = 30.0, *, name: str | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(name=name, clock=clock)
        if not seconds > 0:
            raise ConfigError(f"Deadline seconds must be > 0, got {seconds!r}")
        self.seconds = float(seconds)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        now = self.clock.monotonic()
        deadline = now + self.seconds
        outer = _DEADLINE.get()
        if outer is not None and outer <= deadline:
            # The running deadline is tighter and already has its timer.
            return await fn(*args, **kwargs)
        token = _DEADLINE.set(deadline)
        scope = _CancelScope(self.seconds, self.clock)
        try:
            async with scope:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            if not scope.expired:
                raise
            self._emit("exceeded", seconds=self.seconds)
            raise DeadlineExceededError(
                f"{self.name}: deadline of {self.seconds:.3f}s exceeded", policy=self.name
            ) from exc
        finally:
            _DEADLINE.reset(token)

    def __repr__(self) -> str:
        return f"Deadline({self.seconds!r}, name={self.name!r})"
