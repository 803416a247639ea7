"""``CircuitBreaker``: stop calling an upstream that keeps failing, probe it, resume.

Semantics follow resilience4j's ``CircuitBreaker`` (defaults and all): a sliding
window of recent outcomes (COUNT: the last N calls; TIME: the last N seconds)
opens the breaker once at least ``min_calls`` are buffered and the failure
rate or the slow-call rate reaches its threshold (``>=``). After the open
period a fixed number of probes run in HALF_OPEN; when all have finished
their failure rate closes or re-opens it. Manual states (forced open,
disabled, metrics only) are resilience4j's too. Where interlink departs, it
fixes a known bug of the anchors (resilience.md, section c):

* half-open admits exactly ``half_open_calls`` probes and rejects the rest at
  once; a permit comes back on cancellation, on an ignored exception and when
  the breaker's own bookkeeping fails, and ``max_wait_in_half_open`` sends a
  breaker whose probe hangs back to OPEN (resilience4j #903, #935);
* every transition bumps a generation; an outcome of a call admitted in an
  earlier generation updates the metrics but moves nothing (Polly #217);
* periods run on the monotonic clock only, so stepping the wall clock neither
  lengthens nor shortens them (both anchors use wall-clock UTC);
* the open period can grow on each re-open, with jitter, and resets once the
  breaker closes;
* no lock is held around the protected call (pybreaker #3).

The state that could be shared across processes sits behind ``BreakerStore``
(``_breaker_state``); the window stays local. Events (``circuit_breaker.*``):
``transition`` (from, to, reason, plus the rates for threshold decisions),
``rejected`` (state, retry_after), ``would_open`` (in METRICS_ONLY),
``reset``, and, only while someone listens, ``success``/``failure``/``ignored``
(duration, slow).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from random import Random
from typing import Any, Literal, ParamSpec, TypeVar

from interlink.core.clock import Clock
from interlink.core.errors import (
    CircuitForcedOpenError,
    CircuitOpenError,
    ConfigError,
    RejectedError,
)
from interlink.resilience._breaker_state import (
    BreakerStore,
    BreakerView,
    CircuitState,
    CountWindow,
    MemoryBreakerStore,
    SlidingWindow,
    TimeWindow,
)
from interlink.resilience._matching import ErrorMatcher, error_matcher
from interlink.resilience._policy import Policy

__all__ = ["CircuitBreaker", "CircuitMetrics"]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN
_DISABLED = CircuitState.DISABLED
_METRICS_ONLY = CircuitState.METRICS_ONLY
# Entering these starts a fresh window; OPEN and FORCED_OPEN keep the one that
# explains why the breaker is open (as resilience4j does).
_FRESH_WINDOW = frozenset({_CLOSED, _HALF_OPEN, _DISABLED, _METRICS_ONLY})
_JITTER = 0.1
# Without max_open_for, a growing open period still stops at one day (Polly's
# largest BreakDuration): an upstream is never written off for longer.
_DEFAULT_MAX_OPEN_FOR = 86_400.0


@dataclass(frozen=True, slots=True)
class CircuitMetrics:
    """A snapshot of a breaker. Rates are percentages over the buffered calls
    (0.0 when none); the breaker acts on them only once ``min_calls`` are buffered."""

    state: CircuitState
    failure_rate: float
    slow_call_rate: float
    buffered_calls: int
    failed_calls: int
    slow_calls: int
    not_permitted_calls: int


class CircuitBreaker(Policy):
    """A failure-rate circuit breaker with sliding windows (resilience4j semantics).

    Arguments (percentages in (0, 100], seconds as floats):

    * ``failure_rate`` [50.0]: open when failed calls are at least this share.
    * ``slow_call_rate`` [100.0]: open when slow calls are at least this share.
    * ``slow_call_duration`` [60.0 s]: a call lasting strictly longer is slow.
    * ``window_type`` ["count"]: ``"count"`` (last ``window`` calls) or ``"time"``
      (last ``window`` seconds, in one-second buckets).
    * ``window`` [100]: calls, or seconds for a time window.
    * ``min_calls`` [100]: buffered calls needed before the rates count; clamped
      to ``window`` for a count window.
    * ``open_for`` [60.0 s]: how long OPEN rejects calls.
    * ``open_for_multiplier`` [1.0]: each re-open from half-open multiplies the
      open period (jittered by up to 10%, never below ``open_for``); back to
      ``open_for`` once closed.
    * ``max_open_for`` [None: one day]: cap of the growing open period.
    * ``half_open_calls`` [10]: probes admitted in HALF_OPEN.
    * ``max_wait_in_half_open`` [60.0 s]: HALF_OPEN goes back to OPEN after this.
    * ``record_on`` [Exception]: exceptions counted as failures; others count as
      successes. ``ignore_on`` [None]: exceptions counted as nothing (checked
      first). Cancellation always counts as nothing, and so does interlink's own
      ``RejectedError`` (a bulkhead or rate limiter inside the breaker turning a
      call away says nothing about the upstream's health).
    * ``record_result`` [None]: predicate on a return value; true means failure.
    * ``random`` [a new ``Random()``]: the jitter source. ``store`` [a new
      ``MemoryBreakerStore``]: where the shareable state lives.
    """

    kind = "circuit_breaker"
    __slots__ = (
        "_failure_rate",
        "_generation",
        "_half_open_calls",
        "_ignore_on",
        "_known_state",
        "_max_exponent",
        "_max_open_for",
        "_max_wait_half_open",
        "_min_calls",
        "_multiplier",
        "_not_permitted",
        "_open_for",
        "_random",
        "_record_on",
        "_record_result",
        "_slow_after",
        "_slow_rate",
        "_store",
        "_window",
        "_would_open",
    )

    def __init__(
        self,
        *,
        failure_rate: float = 50.0,
        slow_call_rate: float = 100.0,
        slow_call_duration: float = 60.0,
        window_type: Literal["count", "time"] = "count",
        window: int = 100,
        min_calls: int = 100,
        open_for: float = 60.0,
        open_for_multiplier: float = 1.0,
        max_open_for: float | None = None,
        half_open_calls: int = 10,
        max_wait_in_half_open: float = 60.0,
        record_on: ErrorMatcher = Exception,
        ignore_on: ErrorMatcher | None = None,
        record_result: Callable[[Any], bool] | None = None,
        random: Random | None = None,
        store: BreakerStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self._failure_rate = _percentage("failure_rate", failure_rate)
        self._slow_rate = _percentage("slow_call_rate", slow_call_rate)
        self._slow_after = _seconds("slow_call_duration", slow_call_duration)
        size = _count("window", window)
        self._min_calls = _count("min_calls", min_calls)
        if window_type == "count":
            self._window: SlidingWindow = CountWindow(size)
            self._min_calls = min(self._min_calls, size)
        elif window_type == "time":
            self._window = TimeWindow(size)
        else:
            raise ConfigError(
                f"CircuitBreaker window_type must be 'count' or 'time', got {window_type!r}"
            )
        self._open_for = _seconds("open_for", open_for)
        if isinstance(open_for_multiplier, bool) or not (
            isinstance(open_for_multiplier, int | float) and 1.0 <= open_for_multiplier < math.inf
        ):
            raise ConfigError(
                "CircuitBreaker open_for_multiplier must be a finite number >= 1.0, "
                f"got {open_for_multiplier!r}"
            )
        self._multiplier = float(open_for_multiplier)
        if max_open_for is None:
            self._max_open_for = max(self._open_for, _DEFAULT_MAX_OPEN_FOR)
        else:
            self._max_open_for = _seconds("max_open_for", max_open_for)
            if self._max_open_for < self._open_for:
                raise ConfigError(
                    f"CircuitBreaker max_open_for must be >= open_for ({self._open_for!r}), "
                    f"got {max_open_for!r}"
                )
        # The largest exponent that still changes the period; keeps m**n from overflowing.
        self._max_exponent = (
            0
            if self._multiplier == 1.0
            else math.ceil(math.log(self._max_open_for / self._open_for, self._multiplier))
        )
        self._half_open_calls = _count("half_open_calls", half_open_calls)
        self._max_wait_half_open = _seconds("max_wait_in_half_open", max_wait_in_half_open)
        self._record_on = error_matcher(record_on, owner="CircuitBreaker", arg="record_on")
        self._ignore_on = (
            None
            if ignore_on is None
            else error_matcher(ignore_on, owner="CircuitBreaker", arg="ignore_on")
        )
        if record_result is not None and not callable(record_result):
            raise ConfigError(
                "CircuitBreaker record_result must be None or a callable taking the result "
                f"and returning True for a failure, got {record_result!r}"
            )
        self._record_result = record_result
        self._random = random if random is not None else Random()
        self._store: BreakerStore = store if store is not None else MemoryBreakerStore()
        view = self._store.view()
        self._generation = view.generation
        self._known_state = view.state
        self._not_permitted = 0
        self._would_open = False

    # -- calling ------------------------------------------------------------
    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        view = self._store.view()
        monotonic = self.clock.monotonic
        if view.state is not _CLOSED or view.generation != self._generation:
            now = monotonic()
            view = self._current(now)
            state = view.state
            if state is _DISABLED:
                return await fn(*args, **kwargs)
            if state is _HALF_OPEN:
                return await self._run_probe(fn, args, kwargs, view, now)
            if state is not _CLOSED and state is not _METRICS_ONLY:
                raise self._rejection(view, now)
        # CLOSED (the hot path: one store read, two clock reads, one window write)
        # or METRICS_ONLY: run the call and record its outcome.
        generation = view.generation
        start = monotonic()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self._record_error(exc, start, generation)
            raise
        end = monotonic()
        failed = self._record_result is not None and bool(self._record_result(result))
        self._record(failed, end - start, generation, end)
        return result

    async def _run_probe(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        view: BreakerView,
        now: float,
    ) -> T:
        generation = view.generation
        if not await self._store.acquire_probe(generation, self._half_open_calls):
            raise self._rejection(view, now)
        monotonic = self.clock.monotonic
        # Until the outcome is handed to the store, any way out (cancellation, an
        # ignored error, a predicate that raises) must give the permit back.
        settled = False
        try:
            start = monotonic()
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                end = monotonic()
                failed = self._classify(exc)
                if failed is None:
                    self._emit_outcome("ignored", end - start)
                else:
                    settled = True
                    await self._complete_probe(generation, failed, end - start, end)
                raise
            end = monotonic()
            failed = self._record_result is not None and bool(self._record_result(result))
            settled = True
            await self._complete_probe(generation, failed, end - start, end)
            return result
        finally:
            if not settled:
                self._store.release_probe(generation)

    # -- outcomes -----------------------------------------------------------
    def _classify(self, exc: Exception) -> bool | None:
        """True: a failure; False: a success; None: ignored (no outcome at all)."""
        if isinstance(exc, RejectedError):
            return None
        if self._ignore_on is not None and self._ignore_on(exc):
            return None
        return bool(self._record_on(exc))

    def _record_error(self, exc: Exception, start: float, generation: int) -> None:
        end = self.clock.monotonic()
        failed = self._classify(exc)
        if failed is None:
            self._emit_outcome("ignored", end - start)
        else:
            self._record(failed, end - start, generation, end)

    def _record(self, failed: bool, duration: float, generation: int, now: float) -> None:
        """Add one outcome to the window; in CLOSED or METRICS_ONLY, apply the thresholds."""
        view = self._store.view()
        state = view.state
        if state is _DISABLED:
            return
        slow = duration > self._slow_after
        window = self._window
        window.record(failed, slow, now)
        if self.events.active:
            self._emit("failure" if failed else "success", duration=duration, slow=slow)
        if generation != view.generation or (state is not _CLOSED and state is not _METRICS_ONLY):
            return  # a stale outcome, or a probe: metrics only
        total = window.total
        if total < self._min_calls:
            return
        if window.failed * 100.0 >= self._failure_rate * total:
            reason = "failure_rate"
        elif window.slow * 100.0 >= self._slow_rate * total:
            reason = "slow_call_rate"
        else:
            self._would_open = False
            return
        rates = self._rates(window.failed, window.slow, total)
        if state is _CLOSED:
            self._transition(view, _OPEN, reason, now, rates)
        elif not self._would_open:
            self._would_open = True
            self._emit("would_open", reason=reason, **rates)

    async def _complete_probe(
        self, generation: int, failed: bool, duration: float, now: float
    ) -> None:
        slow = duration > self._slow_after
        tally = await self._store.complete_probe(generation, failed, slow)
        self._record(failed, duration, generation, now)
        if tally is None or tally.completed < self._half_open_calls:
            return
        view = self._store.view()
        if view.generation != generation:
            return
        done = tally.completed
        rates = self._rates(tally.failed, tally.slow, done)
        if tally.failed * 100.0 >= self._failure_rate * done:
            self._transition(view, _OPEN, "probes_failed", now, rates)
        elif tally.slow * 100.0 >= self._slow_rate * done:
            self._transition(view, _OPEN, "probes_slow", now, rates)
        else:
            self._transition(view, _CLOSED, "probes_succeeded", now, rates)

    @staticmethod
    def _rates(failed: int, slow: int, total: int) -> dict[str, Any]:
        return {
            "failure_rate": failed * 100.0 / total,
            "slow_call_rate": slow * 100.0 / total,
            "buffered_calls": total,
        }

    def _emit_outcome(self, what: str, duration: float) -> None:
        if self.events.active:
            self._emit(what, duration=duration, slow=duration > self._slow_after)

    # -- state --------------------------------------------------------------
    def _current(self, now: float) -> BreakerView:
        """The store's view, after adopting foreign changes and lazy, time-based moves."""
        view = self._store.view()
        if view.generation != self._generation:
            self._adopt(view)
        if now >= view.until:
            # Only OPEN and HALF_OPEN have a finite ``until``.
            if view.state is _OPEN:
                moved = self._transition(view, _HALF_OPEN, "open_period_elapsed", now)
            else:
                moved = self._transition(view, _OPEN, "half_open_timeout", now)
            view = moved if moved is not None else self._store.view()
        return view

    def _adopt(self, view: BreakerView) -> None:
        """Catch up with a transition made through the store by someone else."""
        previous = self._known_state
        self._generation = view.generation
        self._known_state = view.state
        if view.state in _FRESH_WINDOW:
            self._window.clear()
            self._would_open = False
        if previous is not view.state:
            self._emit("transition", **{"from": previous, "to": view.state}, reason="shared")

    def _transition(
        self,
        view: BreakerView,
        to: CircuitState,
        reason: str,
        now: float,
        attributes: dict[str, Any] | None = None,
    ) -> BreakerView | None:
        if to is _OPEN:
            reopens = view.reopens + 1 if view.state is _HALF_OPEN else 0
            hold = self._open_period(reopens)
        elif to is _HALF_OPEN:
            reopens, hold = view.reopens, self._max_wait_half_open
        else:
            reopens, hold = (0 if to is _CLOSED else view.reopens), math.inf
        moved = self._store.transition(view.generation, to, hold_for=hold, reopens=reopens, now=now)
        if moved is None:
            return None  # someone moved it first and emitted the event
        previous = view.state
        self._generation = moved.generation
        self._known_state = to
        if to in _FRESH_WINDOW:
            self._window.clear()
            self._would_open = False
        if previous is not to and self.events.active:
            extra = attributes or {}
            if to is _OPEN:
                extra = {**extra, "open_for": hold}
            self._emit("transition", **{"from": previous, "to": to}, reason=reason, **extra)
        return moved

    def _open_period(self, reopens: int) -> float:
        if self._multiplier == 1.0:
            return self._open_for
        grown = self._open_for * self._multiplier ** min(reopens, self._max_exponent)
        base = min(grown, self._max_open_for)
        # Jitter spreads the probes of many clients, but stays within
        # [open_for, max_open_for] so neither bound is ever broken.
        low = max(base * (1.0 - _JITTER), self._open_for)
        high = min(base * (1.0 + _JITTER), self._max_open_for)
        return self._random.uniform(low, high)

    def _rejection(self, view: BreakerView, now: float) -> CircuitOpenError:
        self._not_permitted += 1
        state = view.state
        if state is _FORCED_OPEN:
            error: CircuitOpenError = CircuitForcedOpenError(
                f"circuit breaker {self.name!r} is forced open", policy=self.name
            )
        else:
            left = view.until - now
            error = CircuitOpenError(
                f"circuit breaker {self.name!r} is {state.value}; retry after {left:.3f}s",
                retry_after=left,
                policy=self.name,
            )
        if self.events.active:
            self._emit("rejected", state=state, retry_after=error.retry_after)
        return error

    # -- public surface -----------------------------------------------------
    @property
    def state(self) -> CircuitState:
        """The current state; an elapsed open or half-open period is applied on read."""
        return self._current(self.clock.monotonic()).state

    @property
    def store(self) -> BreakerStore:
        """Where this breaker keeps its shareable state."""
        return self._store

    def metrics(self) -> CircuitMetrics:
        """A snapshot of the window (aged to now) and the rejection count."""
        now = self.clock.monotonic()
        view = self._current(now)
        window = self._window
        window.expire(now)
        total = window.total
        return CircuitMetrics(
            state=view.state,
            failure_rate=window.failed * 100.0 / total if total else 0.0,
            slow_call_rate=window.slow * 100.0 / total if total else 0.0,
            buffered_calls=total,
            failed_calls=window.failed,
            slow_calls=window.slow,
            not_permitted_calls=self._not_permitted,
        )

    def force_open(self) -> None:
        """Reject every call with ``CircuitForcedOpenError`` until ``close()`` or ``reset()``."""
        self._manual(_FORCED_OPEN, "manual")

    def disable(self) -> None:
        """Let every call through and record nothing, until another manual state."""
        self._manual(_DISABLED, "manual")

    def metrics_only(self) -> None:
        """Let every call through, record outcomes, and emit ``would_open`` instead of opening."""
        self._manual(_METRICS_ONLY, "manual")

    def close(self) -> None:
        """Close the breaker with a fresh window; the open period starts again from ``open_for``."""
        self._manual(_CLOSED, "manual")

    def reset(self) -> None:
        """Back to CLOSED as if new: fresh window, no rejections counted, calls in flight go stale."""
        self._not_permitted = 0
        self._window.clear()
        self._manual(_CLOSED, "reset", always=True)
        self._emit("reset")

    def _manual(self, to: CircuitState, reason: str, *, always: bool = False) -> None:
        view = self._store.view()
        if view.generation != self._generation:
            self._adopt(view)
        if always or view.state is not to:
            self._transition(view, to, reason, self.clock.monotonic())

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._store.view().state.value})"


def _percentage(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ConfigError(f"CircuitBreaker {name} must be a percentage in (0, 100], got {value!r}")
    return float(value)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(
            f"CircuitBreaker {name} must be a finite number of seconds > 0, got {value!r}"
        )
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"CircuitBreaker {name} must be an integer >= 1, got {value!r}")
    return value
