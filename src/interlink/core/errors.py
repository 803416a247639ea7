"""The error hierarchy: everything interlink raises on purpose derives from one root.

A caller can catch exactly as much as it means to::

    InterlinkError
    ├── ConfigError                      a setting is malformed or out of range
    └── ResilienceError                  a resilience policy decided, not the callee
        ├── RejectedError                refused locally, the protected call never ran
        │   ├── CircuitOpenError         the breaker is open, or half-open with no probe free
        │   │   └── CircuitForcedOpenError   an operator forced it open
        │   ├── BulkheadFullError        no concurrency slot free within the wait
        │   ├── RateLimitedError         no token within the wait
        │   └── ThrottledLocallyError    adaptive client-side throttling dropped it
        ├── RetryExhaustedError          every attempt failed; ``__cause__`` is the last error
        ├── DeadlineExceededError        the overall deadline passed (also a ``TimeoutError``)
        └── AttemptTimeoutError          one attempt ran too long (also a ``TimeoutError``)

Every ``ResilienceError`` carries ``retry_after``: the seconds after which trying
again may succeed, or ``None`` when nobody knows.
"""

from __future__ import annotations

__all__ = [
    "AttemptTimeoutError",
    "BulkheadFullError",
    "CircuitForcedOpenError",
    "CircuitOpenError",
    "ConfigError",
    "DeadlineExceededError",
    "InterlinkError",
    "RateLimitedError",
    "RejectedError",
    "ResilienceError",
    "RetryExhaustedError",
    "ThrottledLocallyError",
]


class InterlinkError(Exception):
    """The root of every error interlink raises on purpose."""


class ConfigError(InterlinkError, ValueError):
    """A setting is malformed or out of range; the message names it and what was expected."""


class ResilienceError(InterlinkError):
    """A resilience policy made this decision.

    ``retry_after`` is the number of seconds after which a new try may succeed,
    or ``None`` when it is not known. ``policy`` names the policy that decided.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, policy: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.policy = policy


class RejectedError(ResilienceError):
    """A policy refused the call locally: the protected function was not called."""


class CircuitOpenError(RejectedError):
    """The circuit breaker is open (or half-open with every probe taken)."""


class CircuitForcedOpenError(CircuitOpenError):
    """An operator forced the breaker open; it stays so until reset or closed by hand."""


class BulkheadFullError(RejectedError):
    """Every concurrency slot was busy and none freed up within the wait."""


class RateLimitedError(RejectedError):
    """The rate limiter had no token for this call within the wait."""


class ThrottledLocallyError(RejectedError):
    """Adaptive throttling dropped the call on the client, without asking the server."""


class RetryExhaustedError(ResilienceError):
    """Every attempt failed. ``__cause__`` is the last attempt's error.

    ``attempts`` is how many attempts ran; ``elapsed`` the seconds from the first
    attempt's start to giving up; ``last_result`` the last unwanted result when
    the retry was on a result rather than an exception.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        elapsed: float,
        retry_after: float | None = None,
        policy: str = "",
        last_result: object = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, policy=policy)
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_result = last_result


class DeadlineExceededError(ResilienceError, TimeoutError):
    """The overall deadline passed before the work finished."""


class AttemptTimeoutError(ResilienceError, TimeoutError):
    """A single attempt ran longer than its timeout and was cancelled."""
