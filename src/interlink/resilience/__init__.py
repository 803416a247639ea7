"""Resilience policies for any awaitable: retry, circuit breaker, bulkhead, rate
limiter, timeout and deadline, fallback, hedging, adaptive throttling, and a
``Pipeline`` that composes them in one documented order.

Every policy exposes ``await policy.call(fn, *args, **kwargs)``, works as a
decorator, takes ``clock=`` (tests pass ``interlink.testing.FakeClock``) and
emits a ``ResilienceEvent`` for every decision it makes.
"""

from interlink.core.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitForcedOpenError,
    CircuitOpenError,
    DeadlineExceededError,
    RateLimitedError,
    RejectedError,
    ResilienceError,
    RetryExhaustedError,
    ThrottledLocallyError,
)
from interlink.resilience._events import EVENTS, EventHub, Listener, ResilienceEvent, subscribe
from interlink.resilience._policy import Policy
from interlink.resilience._timeout import Deadline, Timeout, current_deadline, deadline_remaining

__all__ = [
    "EVENTS",
    "AttemptTimeoutError",
    "BulkheadFullError",
    "CircuitForcedOpenError",
    "CircuitOpenError",
    "Deadline",
    "DeadlineExceededError",
    "EventHub",
    "Listener",
    "Policy",
    "RateLimitedError",
    "RejectedError",
    "ResilienceError",
    "ResilienceEvent",
    "RetryExhaustedError",
    "ThrottledLocallyError",
    "Timeout",
    "current_deadline",
    "deadline_remaining",
    "subscribe",
]
