"""``Fallback``: answer with a value, or a handler's value, when the call fails.

Semantics follow Polly v8's fallback strategy (an action chosen by
``ShouldHandle``) with interlink's rules for cancellation: a cancelled call is
never replaced by a fallback, because the caller asked it to stop and must see
``CancelledError``. Only ``Exception`` subclasses are ever handled, so
``KeyboardInterrupt``/``SystemExit`` pass through as well.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from interlink.core.clock import Clock
from interlink.core.errors import ConfigError
from interlink.resilience import _validate as check
from interlink.resilience._matching import ErrorMatcher, error_matcher
from interlink.resilience._policy import Policy

__all__ = ["Fallback"]

P = ParamSpec("P")
T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


_MISSING: Any = _Missing()


class Fallback(Policy):
    """Return ``value``, or what ``handler(error)`` returns, when the call raises a matching error.

    Exactly one of ``value`` and ``handler`` must be given (else ``ConfigError``).
    ``handler`` receives the exception it replaces and may be a plain function
    or an ``async def``/any callable returning an awaitable. ``on`` picks the
    errors to replace: an exception type, a tuple of types or a predicate
    (default ``Exception``: every failure, rejections by inner policies
    included). ``CancelledError`` never falls back. If the handler raises, that
    error propagates with the original as its ``__context__``.

    The fallback value should have the protected function's return type; the
    type checker cannot see through a runtime value, so this is on the caller.

    Events: ``fallback.applied`` with ``error`` (the replaced exception's type
    name) and ``handler`` (``True`` when a handler produced the value).
    """

    kind = "fallback"
    __slots__ = ("_handler", "_matches", "_value")

    def __init__(
        self,
        value: Any = _MISSING,
        *,
        handler: Callable[[Exception], Any] | None = None,
        on: ErrorMatcher = Exception,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        if (value is _MISSING) == (handler is None):
            raise ConfigError(
                "Fallback needs exactly one of value and handler, got "
                + ("both" if handler is not None else "neither")
            )
        self._value = value
        self._handler = check.callable_or_none(
            "Fallback", "handler", handler, what="a callable (error) -> value"
        )
        self._matches = error_matcher(on, owner="Fallback", arg="on")

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            if self.events.active:
                self._emit("applied", error=type(exc).__name__, handler=self._handler is not None)
            handler = self._handler
            if handler is None:
                return cast("T", self._value)
            result = handler(exc)
            if inspect.isawaitable(result):
                result = await result
            return cast("T", result)

    def __repr__(self) -> str:
        what = f"handler={self._handler!r}" if self._handler is not None else repr(self._value)
        return f"Fallback({what}, name={self.name!r})"
