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
(``_breaker_state``); the window stays local. How the breaker moves between
states (transitions, the open period, manual states) is its base class
``BreakerStateMachine`` (``_breaker_machine``); this module decides when to
move: it admits calls, records their outcomes and applies the thresholds.

Events (``circuit_breaker.*``): ``transition`` (from, to, reason, plus the
rates for threshold decisions), ``rejected`` (state, retry_after),
``would_open`` (in METRICS_ONLY), ``reset``, and, only while someone listens,
``success``/``failure``/``ignored`` (duration, slow).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from random import Random
from typing import Any, Literal, ParamSpec, TypeVar

from interlink.core.clock import Clock
from interlink.core.errors import CircuitForcedOpenError, CircuitOpenError, RejectedError
from interlink.resilience import _validate as check
from interlink.resilience._breaker_machine import BreakerStateMachine
from interlink.resilience._breaker_state import (
    BreakerStore,
    BreakerView,
    CircuitState,
    CountWindow,
    SlidingWindow,
    TimeWindow,
)
from interlink.resilience._matching import ErrorMatcher, error_matcher

__all__ = ["CircuitBreaker", "CircuitMetrics"]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN
_DISABLED = CircuitState.DISABLED
_METRICS_ONLY = CircuitState.METRICS_ONLY
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


class CircuitBreaker(BreakerStateMachine):
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

    ``state``, ``store`` and the manual states (``force_open()``, ``disable()``,
    ``metrics_only()``, ``close()``) come from ``BreakerStateMachine``.
    """

    kind = "circuit_breaker"
    __slots__ = (
        "_failure_rate",
        "_half_open_calls",
        "_ignore_on",
        "_min_calls",
        "_not_permitted",
        "_record_on",
        "_record_result",
        "_slow_after",
        "_slow_rate",
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
        owner = "CircuitBreaker"
        self._failure_rate = check.percentage(owner, "failure_rate", failure_rate)
        self._slow_rate = check.percentage(owner, "slow_call_rate", slow_call_rate)
        self._slow_after = check.seconds(
            owner, "slow_call_duration", slow_call_duration, allow_zero=False
        )
        size = check.count(owner, "window", window)
        self._min_calls = check.count(owner, "min_calls", min_calls)
        sliding: SlidingWindow
        if check.one_of(owner, "window_type", window_type, ("count", "time")) == "count":
            sliding = CountWindow(size)
            self._min_calls = min(self._min_calls, size)
        else:
            sliding = TimeWindow(size)
        open_for = check.seconds(owner, "open_for", open_for, allow_zero=False)
        if max_open_for is None:
            max_open_for = max(open_for, _DEFAULT_MAX_OPEN_FOR)
        else:
            max_open_for = check.seconds(owner, "max_open_for", max_open_for, allow_zero=False)
            check.ordered(owner, "max_open_for", max_open_for, ">=", "open_for", open_for)
        self._half_open_calls = check.count(owner, "half_open_calls", half_open_calls)
        self._record_on = error_matcher(record_on, owner=owner, arg="record_on")
        self._ignore_on = (
            None if ignore_on is None else error_matcher(ignore_on, owner=owner, arg="ignore_on")
        )
        self._record_result = check.callable_or_none(
            owner, "record_result", record_result, what="a predicate (result) -> bool"
        )
        self._not_permitted = 0
        super().__init__(
            window=sliding,
            open_for=open_for,
            multiplier=check.number(owner, "open_for_multiplier", open_for_multiplier, low=1.0),
            max_open_for=max_open_for,
            max_wait_in_half_open=check.seconds(
                owner, "max_wait_in_half_open", max_wait_in_half_open, allow_zero=False
            ),
            random=random,
            store=store,
            name=name,
            clock=clock,
        )

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
        record_result = self._record_result
        failed = record_result is not None and bool(record_result(result))
        duration = end - start
        if not failed and duration <= self._slow_after and not self.events.active:
            # A quick success with nobody listening: _record's work, minus what
            # cannot apply (no event; a window with no failed or slow call
            # exceeds no threshold).
            view = self._store.view()
            if view.state is _CLOSED and view.generation == generation:
                window = self._window
                window.record_success(end)
                if window.failed or window.slow:
                    self._apply_thresholds(view, end)
                return result
        self._record(failed, duration, generation, end)
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
        self._apply_thresholds(view, now)

    def _apply_thresholds(self, view: BreakerView, now: float) -> None:
        """In CLOSED, open when the window exceeds a threshold; in METRICS_ONLY, say it would."""
        window = self._window
        state = view.state
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

    def reset(self) -> None:
        """Back to CLOSED as if new: fresh window, no rejections counted, calls in flight go stale."""
        self._not_permitted = 0
        self._window.clear()
        self._manual(_CLOSED, "reset", always=True)
        self._emit("reset")

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._store.view().state.value})"
