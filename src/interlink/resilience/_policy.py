"""What every policy shares: a name, a clock, an event hub, ``call`` and decorator use."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from interlink.core.clock import SYSTEM_CLOCK, Clock
from interlink.resilience._events import EVENTS, EventHub, ResilienceEvent

__all__ = ["Policy"]

P = ParamSpec("P")
T = TypeVar("T")


class Policy(ABC):
    """Base of every resilience policy.

    Subclasses implement ``call``. An instance is also a decorator::

        breaker = CircuitBreaker()

        @breaker
        async def fetch(order_id: str) -> dict: ...

    ``name`` appears in events, errors and metrics; ``clock`` defaults to the
    real monotonic clock; ``events`` is this policy's hub, chained to the
    process-wide one.
    """

    kind = "policy"
    __slots__ = ("clock", "events", "name")

    def __init__(self, *, name: str | None = None, clock: Clock | None = None) -> None:
        self.name = name if name is not None else self.kind
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self.events = EventHub(EVENTS)

    @abstractmethod
    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``await fn(*args, **kwargs)`` under this policy."""

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an ``async def`` so that every call goes through this policy."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    def _emit(self, what: str, **attributes: Any) -> None:
        """Emit ``<kind>.<what>`` if anyone listens (callers may pre-check ``events.active``)."""
        if self.events.active:
            self.events.emit(
                ResilienceEvent(
                    f"{self.kind}.{what}", self.name, self.clock.monotonic(), attributes
                )
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
