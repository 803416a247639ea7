"""The ground floor: errors, durations, the injectable clock and secrets."""

from interlink.core.clock import SYSTEM_CLOCK, Clock, MonotonicClock, TimerHandle
from interlink.core.durations import parse_duration
from interlink.core.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitForcedOpenError,
    CircuitOpenError,
    ClientError,
    ClientTimeoutError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    HttpStatusError,
    InterlinkError,
    RateLimitedError,
    RejectedError,
    ResilienceError,
    ResponseValidationError,
    RetryExhaustedError,
    ThrottledLocallyError,
)
from interlink.core.secrets import Secret, reveal

__all__ = [
    "SYSTEM_CLOCK",
    "AttemptTimeoutError",
    "BulkheadFullError",
    "CircuitForcedOpenError",
    "CircuitOpenError",
    "ClientError",
    "ClientTimeoutError",
    "Clock",
    "ConfigError",
    "ConnectError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "HttpStatusError",
    "InterlinkError",
    "MonotonicClock",
    "RateLimitedError",
    "RejectedError",
    "ResilienceError",
    "ResponseValidationError",
    "RetryExhaustedError",
    "Secret",
    "ThrottledLocallyError",
    "TimerHandle",
    "parse_duration",
    "reveal",
]
