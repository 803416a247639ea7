"""Which errors a policy acts on: ``on=`` arguments turned into one predicate.

Several policies take such an argument (``Retry.retry_on``,
``CircuitBreaker.record_on``/``ignore_on``, ``Fallback.on``,
``RateLimiter.drain_on``, ``Hedge.hedge_on``, ``AdaptiveThrottle.overloaded_on``):
an exception type, a tuple of them, or a predicate taking the exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from interlink.core.errors import ConfigError

__all__ = ["ErrorMatcher", "error_matcher"]

ErrorMatcher = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""Which errors a policy acts on: an exception type, a tuple of them, or a predicate."""


def error_matcher(on: ErrorMatcher, *, owner: str, arg: str) -> Callable[[BaseException], bool]:
    """Return a predicate for ``on``; a wrong shape is a ``ConfigError`` naming ``owner arg``.

    Types must be ``Exception`` subclasses: ``CancelledError`` and the other
    ``BaseException``-only errors are never handled by a policy.
    """
    types: tuple[object, ...]
    if isinstance(on, type):
        types = (on,)
    elif isinstance(on, tuple):
        types = on
        if not types:
            raise ConfigError(f"{owner} {arg} must name at least one exception type, got ()")
    elif callable(on):
        return on
    else:
        raise ConfigError(
            f"{owner} {arg} must be an exception type, a tuple of them or a predicate, got {on!r}"
        )
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise ConfigError(
                f"{owner} {arg} must hold Exception subclasses (cancellation is never handled),"
                f" got {kind!r}"
            )
    matched = cast("tuple[type[BaseException], ...]", types)
    return lambda exc: isinstance(exc, matched)
