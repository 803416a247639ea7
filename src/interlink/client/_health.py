"""``ClientHealth``: what ``ApiClient.health()`` reports for health checks and dashboards.

A call counts as a failure when the upstream or the way to it failed:
a connect error, a timeout, a lost connection, a retryable status (408, 429,
5xx the client retries) after the retries, or a local rejection (open
circuit, full bulkhead, rate limit). An answer the caller must handle (404,
422, a body that fails validation) is not a failure of the upstream, the
same line the circuit breaker draws.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from interlink.core.errors import (
    ClientError,
    HttpStatusError,
    ResilienceError,
    ResponseValidationError,
)

__all__ = ["ClientHealth", "HealthTracker", "is_upstream_failure"]

_WINDOW = 100
_HEALTHY_STATES = frozenset({None, "closed", "disabled", "metrics_only"})


@dataclass(frozen=True, slots=True)
class ClientHealth:
    """A snapshot of one client's health.

    ``name``: the client's name. ``breaker_state``: its circuit breaker's
    state (``"closed"``, ``"open"``, ``"half_open"``, ...) or ``None`` when
    its pipeline has none. ``error_rate``: the percentage (0.0-100.0) of the
    last 100 calls that failed (0.0 before any call). ``requests`` and
    ``failures``: calls and failed calls since the client was created.
    ``breakers``: with ``breaker_per_host``, the state of each host's breaker.
    """

    name: str
    breaker_state: str | None
    error_rate: float
    requests: int
    failures: int
    breakers: Mapping[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True unless a breaker is open (or forced open, or probing in half-open)."""
        states = [self.breaker_state, *self.breakers.values()]
        return all(state in _HEALTHY_STATES for state in states)


def is_upstream_failure(error: BaseException) -> bool:
    """Whether a call that raised ``error`` counts as a failure (see the module docstring)."""
    if isinstance(error, ResponseValidationError):
        return False
    if isinstance(error, HttpStatusError):
        return error.retryable
    return isinstance(error, ClientError | ResilienceError)


class HealthTracker:
    """Counts calls and failures, and keeps the last ``window`` outcomes for the error rate."""

    __slots__ = ("_recent", "failures", "requests")

    def __init__(self, window: int = _WINDOW) -> None:
        self._recent: deque[int] = deque(maxlen=window)
        self.requests = 0
        self.failures = 0

    def success(self) -> None:
        self.requests += 1
        self._recent.append(0)

    def failure(self) -> None:
        self.requests += 1
        self.failures += 1
        self._recent.append(1)

    @property
    def error_rate(self) -> float:
        """Percentage of failures among the recent calls (0.0 when there were none)."""
        recent = self._recent
        return 100.0 * sum(recent) / len(recent) if recent else 0.0
