"""The client's default resilience pipeline, and how ``resilience=`` becomes pipelines.

The anchor is the standard resilience handler of
Microsoft.Extensions.Http.Resilience (``AddStandardResilienceHandler``, Polly
v8), the most widely deployed set of HTTP client defaults. Outside in:

=============  ===========================================  ==========================================
part           interlink default                            standard handler
=============  ===========================================  ==========================================
deadline       none (add ``"deadline": "30s"``)             total request timeout 30 s
retry          3 attempts, 0.2 s initial, x2, 10 s cap,     3 retries (4 attempts), 2 s initial,
               full jitter, Retry-After up to 60 s          exponential, jitter, Retry-After honoured
breaker        50 % failures over a 30 s time window,       10 % over 30 s, at least 100 calls,
               at least 20 calls, open 5 s, 1 probe         break 5 s
bulkhead       none (the pool holds 100 connections)        concurrency limiter 1,000, queue 0
timeout        ``timeout`` (10 s) per attempt, enforced by  attempt timeout 10 s
               the transport
=============  ===========================================  ==========================================

Where interlink departs: three attempts in all (the SRE book's "at most 3",
gRPC A6 and resilience4j count the first call too) starting at 200 ms,
because a caller waiting 2 s, 4 s, 8 s is usually worse off than one told
"down"; a 50 % failure rate (resilience4j's default) over at least 20 calls
rather than 10 % over 100, so a low-traffic client is protected at all and a
few stray 5xx do not open it; one half-open probe (Polly's behaviour). No
total deadline by default: three attempts of ``timeout`` plus capped waits
already bound a call, and a deadline costs a second timer per call (about
1 us, 3 us under load, against a budget of 50 us); no bulkhead either: the
transport's pool (100 connections) already bounds what reaches the upstream,
and a limit of 1,000 would cost every call without ever being reached by
most. Add either in the mapping (``"deadline": "30s"``, ``"bulkhead":
{"max_concurrent": 50}``) when a caller needs a hard bound or fail-fast. Only "trying again may help"
failures reach the retry and the breaker (connect errors, timeouts, lost
connections, 408, 429, 500, 502, 503, 504): a 404 is an answer, not an outage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interlink.core.clock import Clock
from interlink.core.errors import ConfigError
from interlink.resilience import Pipeline, RateLimiter
from interlink.resilience import _validate as check

__all__ = ["DEFAULT_RESILIENCE", "PipelineFactory", "attempt_timeout"]

DEFAULT_RESILIENCE: Mapping[str, Any] = {
    "retry": {"max_attempts": 3, "initial_delay": 0.2, "max_delay": 10.0, "jitter": "full"},
    "circuit_breaker": {
        "window_type": "time",
        "window": 30,
        "failure_rate": 50.0,
        "min_calls": 20,
        "open_for": 5.0,
        "half_open_calls": 1,
    },
}
"""The default pipeline as ``Pipeline.from_dict`` config, without its ``timeout`` (the client's)."""


def attempt_timeout(value: Any, default: float) -> float:
    """The per-attempt timeout a ``resilience`` mapping's ``timeout`` asks for, in seconds."""
    if value is None:
        return default
    if isinstance(value, Mapping):
        unknown = set(value) - {"seconds"}
        if unknown:
            raise ConfigError(
                f"ApiClient resilience: timeout.{sorted(unknown)[0]} is not a Timeout argument "
                "(expected: seconds)"
            )
        value = value.get("seconds", default)
    try:
        return check.seconds(
            "ApiClient", "resilience timeout", value, allow_zero=False, strings=True
        )
    except ConfigError as exc:
        raise ConfigError(
            str(exc).replace("ApiClient resilience timeout", "ApiClient resilience: timeout")
        ) from None


def with_rate_limiter(pipeline: Pipeline, limiter: RateLimiter) -> Pipeline:
    """``pipeline`` with ``limiter`` as its rate limiter (the parts are shared, not copied)."""
    if pipeline.rate_limiter is limiter:
        return pipeline
    if pipeline.rate_limiter is not None:
        raise ConfigError(
            "ApiClient rate_limiter must be None when resilience= already has a rate limiter "
            f"({pipeline.rate_limiter!r}); pass one or the other"
        )
    return pipeline.replace(rate_limiter=limiter)


class PipelineFactory:
    """Builds the client's pipeline, and one per host when ``breaker_per_host`` is on.

    ``resilience``: ``None`` (the default pipeline), a ``Pipeline`` (used as
    it is; per host only if it was built by ``from_dict``, whose config can
    build it again) or a mapping for ``Pipeline.from_dict`` whose
    ``timeout`` defaults to ``timeout``.
    """

    __slots__ = ("_clock", "_config", "_limiter", "_name", "first", "timeout")

    def __init__(
        self,
        resilience: Pipeline | Mapping[str, Any] | None,
        *,
        timeout: float,
        name: str,
        clock: Clock | None,
        rate_limiter: RateLimiter | None,
        per_host: bool,
    ) -> None:
        self._name = name
        self._clock = clock
        self._limiter = rate_limiter
        config: Mapping[str, Any] | None
        self.timeout = timeout
        """Seconds per attempt, enforced by the transport (``request.timeout``)."""
        if resilience is None:
            config = DEFAULT_RESILIENCE
        elif isinstance(resilience, Pipeline):
            config = resilience.config
            if per_host and config is None:
                raise ConfigError(
                    "ApiClient breaker_per_host=True needs resilience= as None, a mapping or a "
                    "Pipeline built by Pipeline.from_dict: a Pipeline built in code cannot be "
                    "copied for each host"
                )
        elif isinstance(resilience, Mapping):
            # The attempt timeout is the transport's (aiohttp already keeps a
            # timer per request): a Timeout layer would pay for a second one.
            config = {key: value for key, value in resilience.items() if key != "timeout"}
            self.timeout = attempt_timeout(resilience.get("timeout"), timeout)
        else:
            raise ConfigError(
                "ApiClient resilience must be None (the default pipeline), a Pipeline or a "
                f"mapping for Pipeline.from_dict, got {resilience!r}"
            )
        self._config = config
        first = resilience if isinstance(resilience, Pipeline) else self._build(name)
        self.first = first if rate_limiter is None else with_rate_limiter(first, rate_limiter)

    def _build(self, name: str) -> Pipeline:
        assert self._config is not None  # the constructor refused the other case
        try:
            return Pipeline.from_dict(self._config, name=name, clock=self._clock)
        except ConfigError as exc:
            raise ConfigError(f"ApiClient resilience: {exc}") from None

    def for_host(self, host: str) -> Pipeline:
        """A fresh pipeline (its own breaker) for ``host``, named ``<name>@<host>``."""
        pipeline = self._build(f"{self._name}@{host}")
        limiter = self._limiter
        return pipeline if limiter is None else with_rate_limiter(pipeline, limiter)
