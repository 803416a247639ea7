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
from interlink.resilience._backoff import parse_retry_after
from interlink.resilience._breaker import CircuitBreaker, CircuitMetrics
from interlink.resilience._breaker_state import (
    BreakerStore,
    BreakerView,
    CircuitState,
    MemoryBreakerStore,
    ProbeTally,
)
from interlink.resilience._budget import BudgetStore, MemoryBudgetStore, RetryBudget
from interlink.resilience._bulkhead import Bulkhead
from interlink.resilience._events import EVENTS, EventHub, Listener, ResilienceEvent, subscribe
from interlink.resilience._fallback import Fallback
from interlink.resilience._hedge import Hedge
from interlink.resilience._matching import ErrorMatcher
from interlink.resilience._pipeline import Pipeline
from interlink.resilience._policy import Policy
from interlink.resilience._rate_limiter import (
    MemoryTokenBucketStore,
    RateLimiter,
    TokenBucketSpec,
    TokenBucketStore,
)
from interlink.resilience._retry import Retry, current_attempt, idempotent
from interlink.resilience._throttle import AdaptiveThrottle, is_overload
from interlink.resilience._timeout import Deadline, Timeout, current_deadline, deadline_remaining

__all__ = [
    "EVENTS",
    "AdaptiveThrottle",
    "AttemptTimeoutError",
    "BreakerStore",
    "BreakerView",
    "BudgetStore",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitForcedOpenError",
    "CircuitMetrics",
    "CircuitOpenError",
    "CircuitState",
    "Deadline",
    "DeadlineExceededError",
    "ErrorMatcher",
    "EventHub",
    "Fallback",
    "Hedge",
    "Listener",
    "MemoryBreakerStore",
    "MemoryBudgetStore",
    "MemoryTokenBucketStore",
    "Pipeline",
    "Policy",
    "ProbeTally",
    "RateLimitedError",
    "RateLimiter",
    "RejectedError",
    "ResilienceError",
    "ResilienceEvent",
    "Retry",
    "RetryBudget",
    "RetryExhaustedError",
    "ThrottledLocallyError",
    "Timeout",
    "TokenBucketSpec",
    "TokenBucketStore",
    "current_attempt",
    "current_deadline",
    "deadline_remaining",
    "idempotent",
    "is_overload",
    "parse_retry_after",
    "subscribe",
]
