"""The ground floor: errors, durations and the injectable clock."""

from interlink.core.clock import SYSTEM_CLOCK, Clock, MonotonicClock, TimerHandle
from interlink.core.durations import parse_duration
from interlink.core.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitForcedOpenError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    InterlinkError,
    RateLimitedError,
    RejectedError,
    ResilienceError,
    RetryExhaustedError,
    ThrottledLocallyError,
)

__all__ = [
    "SYSTEM_CLOCK",
    "AttemptTimeoutError",
    "BulkheadFullError",
    "CircuitForcedOpenError",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "DeadlineExceededError",
    "InterlinkError",
    "MonotonicClock",
    "RateLimitedError",
    "RejectedError",
    "ResilienceError",
    "RetryExhaustedError",
    "ThrottledLocallyError",
    "TimerHandle",
    "parse_duration",
]
