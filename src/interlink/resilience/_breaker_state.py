"""What a circuit breaker remembers: a shared part behind ``BreakerStore``, a local part in windows.

The state of a breaker splits in two, and only one half may ever need to be
shared between processes:

* **Shared** (``BreakerStore``): the current ``CircuitState``, a
  ``generation`` that every transition bumps, ``until`` (when the current
  OPEN or HALF_OPEN period ends), ``reopens`` (how many times in a row the
  breaker re-opened from half-open, which grows the open period) and the
  half-open probe accounting (permits granted, probes completed and how many
  of them failed or were slow). ``MemoryBreakerStore`` keeps it in this
  process and is the default.
* **Local** (``CountWindow``, ``TimeWindow``): the sliding window of recent
  outcomes that decides when a CLOSED breaker opens. It stays in the process,
  like the quorum proposal for Polly (App-vNext/Polly#287): each process
  judges the upstream by its own calls, so one badly placed node cannot open
  the breaker for all, while an OPEN decided anywhere is seen everywhere.

Why the store's interface looks the way it does, so that a Redis store (a
later issue: an open in process A seen in B within 1 s, an atomic
cluster-wide half-open grant, keys with TTLs) plugs in without touching
``_breaker.py``:

* ``view()`` is synchronous and returns an immutable ``BreakerView``. The
  breaker reads it on every call, so it must cost an attribute read: a
  networked store serves it from a local replica that it refreshes in the
  background (polling or pub/sub) within its staleness bound.
* ``transition()`` is a compare-and-set on ``generation``: it succeeds only if
  nobody moved the breaker since the caller's view, so concurrent callers
  cannot both open it and each transition emits exactly one event. It is
  synchronous so that a state read can apply a lazy time-based transition; a
  networked store applies it to its replica and writes it behind
  (``SET`` with ``PX`` = ``hold_for``), adopting the winner's view if its
  write loses.
* Times cross the interface as durations (``hold_for``) and come back as
  ``until`` on the caller's monotonic clock, because two hosts share no
  monotonic clock; Redis's ``PTTL`` is already "time left".
* ``acquire_probe`` and ``complete_probe`` are coroutines: the half-open grant
  and the probe tally must be exact across processes (a Lua script or
  ``INCR`` against the limit), which needs a round trip. Only a HALF_OPEN
  breaker calls them. ``release_probe`` is synchronous because it runs
  while a cancellation unwinds, where awaiting is not safe; a networked
  store sends it without waiting for the reply.
* Probe calls name the generation they belong to, so an answer that arrives
  after the breaker moved on is ignored by the store itself.

Windows follow resilience4j's ``SlidingWindowType``: COUNT keeps the last N
outcomes in a ring, TIME keeps N one-second buckets; both subtract what falls
out, so recording and reading are O(1) (TIME rolls at most N buckets after a
quiet period, and rolls on read too, so a window ages out without traffic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from math import floor as _floor
from typing import NamedTuple, Protocol

__all__ = [
    "BreakerStore",
    "BreakerView",
    "CircuitState",
    "CountWindow",
    "MemoryBreakerStore",
    "ProbeTally",
    "SlidingWindow",
    "TimeWindow",
]


class CircuitState(StrEnum):
    """Where a breaker is. The first three move by themselves; the rest only by hand."""

    CLOSED = "closed"
    """Calls pass and their outcomes fill the window; thresholds open the breaker."""
    OPEN = "open"
    """Calls are rejected with ``CircuitOpenError`` until the open period ends."""
    HALF_OPEN = "half_open"
    """A fixed number of probe calls pass; their outcomes close or re-open it."""
    FORCED_OPEN = "forced_open"
    """Rejects every call with ``CircuitForcedOpenError`` until closed or reset."""
    DISABLED = "disabled"
    """Lets every call through and records nothing."""
    METRICS_ONLY = "metrics_only"
    """Lets every call through, records outcomes, and reports "would open" instead of opening."""


@dataclass(frozen=True, slots=True)
class BreakerView:
    """The shared state of a breaker at one moment.

    ``until`` is the monotonic time (on the reading breaker's clock) at which
    the current period ends: the end of the open period in OPEN, the latest end
    of half-open in HALF_OPEN, ``math.inf`` in every other state.
    """

    state: CircuitState
    generation: int
    until: float
    reopens: int


class ProbeTally(NamedTuple):
    """Outcomes of the half-open probes of one generation, counted so far."""

    completed: int
    failed: int
    slow: int


class BreakerStore(Protocol):
    """Where a breaker keeps the state that may be shared (see the module docstring)."""

    def view(self) -> BreakerView:
        """The current state; cheap, called on every call."""
        ...

    def transition(
        self,
        expected_generation: int,
        state: CircuitState,
        *,
        hold_for: float,
        reopens: int,
        now: float,
    ) -> BreakerView | None:
        """Move to ``state`` if the generation is still ``expected_generation``.

        Returns the new view (generation + 1, ``until = now + hold_for``), or
        ``None`` when someone else moved first. Resets the probe accounting.
        """
        ...

    async def acquire_probe(self, generation: int, limit: int) -> bool:
        """Grant one half-open permit if ``generation`` is current, HALF_OPEN, and fewer
        than ``limit`` permits are out (completed probes keep theirs)."""
        ...

    def release_probe(self, generation: int) -> None:
        """Give back a permit whose call ended with no outcome (cancelled, ignored)."""
        ...

    async def complete_probe(self, generation: int, failed: bool, slow: bool) -> ProbeTally | None:
        """Count a probe's outcome; the tally so far, or ``None`` if ``generation`` is stale."""
        ...


class MemoryBreakerStore:
    """The default ``BreakerStore``: plain attributes in this process.

    asyncio runs one task at a time and none of these methods awaits, so
    every method is atomic without a lock. Two breakers given the same
    instance share their state (a breaker per route over one upstream).
    """

    __slots__ = ("_completed", "_failed", "_granted", "_slow", "_view")

    def __init__(self) -> None:
        self._view = BreakerView(CircuitState.CLOSED, 0, math.inf, 0)
        self._granted = self._completed = self._failed = self._slow = 0

    def view(self) -> BreakerView:
        return self._view

    def transition(
        self,
        expected_generation: int,
        state: CircuitState,
        *,
        hold_for: float,
        reopens: int,
        now: float,
    ) -> BreakerView | None:
        if expected_generation != self._view.generation:
            return None
        self._view = BreakerView(state, expected_generation + 1, now + hold_for, reopens)
        self._granted = self._completed = self._failed = self._slow = 0
        return self._view

    async def acquire_probe(self, generation: int, limit: int) -> bool:
        view = self._view
        if (
            generation != view.generation
            or view.state is not CircuitState.HALF_OPEN
            or self._granted >= limit
        ):
            return False
        self._granted += 1
        return True

    def release_probe(self, generation: int) -> None:
        if generation == self._view.generation and self._granted > self._completed:
            self._granted -= 1

    async def complete_probe(self, generation: int, failed: bool, slow: bool) -> ProbeTally | None:
        if generation != self._view.generation:
            return None
        self._completed += 1
        self._failed += failed
        self._slow += slow
        return ProbeTally(self._completed, self._failed, self._slow)

    @property
    def probes_granted(self) -> int:
        """Half-open permits out in the current generation (running or completed)."""
        return self._granted

    def __repr__(self) -> str:
        view = self._view
        return f"MemoryBreakerStore(state={view.state.value}, generation={view.generation})"


class SlidingWindow(Protocol):
    """Recent outcomes: ``total`` buffered calls, of which ``failed`` and ``slow``."""

    total: int
    failed: int
    slow: int

    def record(self, failed: bool, slow: bool, now: float) -> None: ...

    def record_success(self, now: float) -> None:
        """``record(False, False, now)``, for the breaker's hot path."""
        ...

    def expire(self, now: float) -> None: ...

    def clear(self) -> None: ...


class CountWindow:
    """The last ``size`` outcomes, in a ring (resilience4j COUNT_BASED)."""

    __slots__ = ("_next", "_ring", "_size", "failed", "slow", "total")

    def __init__(self, size: int) -> None:
        self._size = size
        # Each slot holds bit 0 = failed, bit 1 = slow, so eviction knows what to subtract.
        self._ring = [0] * size
        self._next = 0
        self.total = self.failed = self.slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        ring = self._ring
        i = self._next
        if self.total == self._size:
            old = ring[i]
            if old:
                self.failed -= old & 1
                self.slow -= old >> 1
        else:
            self.total += 1
        if failed or slow:
            ring[i] = failed | (slow << 1)
            self.failed += failed
            self.slow += slow
        else:
            ring[i] = 0
        i += 1
        self._next = 0 if i == self._size else i

    def record_success(self, now: float) -> None:
        """``record(False, False, now)``, for the breaker's hot path."""
        i = self._next
        if self.total == self._size:
            old = self._ring[i]
            if old:
                self.failed -= old & 1
                self.slow -= old >> 1
                self._ring[i] = 0
        else:
            self.total += 1
        i += 1
        self._next = 0 if i == self._size else i

    def expire(self, now: float) -> None:
        """Count windows do not age; present so both windows read alike."""

    def clear(self) -> None:
        self._ring = [0] * self._size
        self._next = 0
        self.total = self.failed = self.slow = 0


class TimeWindow:
    """Outcomes of the last ``seconds`` whole seconds, one bucket each (resilience4j TIME_BASED).

    The window covers the current second and the ``seconds - 1`` before it on
    the monotonic clock; buckets that fall out are subtracted when the window
    is next written or read.
    """

    __slots__ = ("_fails", "_newest", "_size", "_slows", "_totals", "failed", "slow", "total")

    def __init__(self, seconds: int) -> None:
        self._size = seconds
        self._totals = [0] * seconds
        self._fails = [0] * seconds
        self._slows = [0] * seconds
        self._newest: int | None = None
        self.total = self.failed = self.slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        second = math.floor(now)
        if second != self._newest:
            self._roll(second)
        i = second % self._size
        self._totals[i] += 1
        self.total += 1
        if failed:
            self._fails[i] += 1
            self.failed += 1
        if slow:
            self._slows[i] += 1
            self.slow += 1

    def record_success(self, now: float) -> None:
        """``record(False, False, now)``, for the breaker's hot path."""
        second = _floor(now)
        if second != self._newest:
            self._roll(second)
        self._totals[second % self._size] += 1
        self.total += 1

    def expire(self, now: float) -> None:
        second = math.floor(now)
        if second != self._newest:
            self._roll(second)

    def clear(self) -> None:
        self._totals = [0] * self._size
        self._fails = [0] * self._size
        self._slows = [0] * self._size
        self._newest = None
        self.total = self.failed = self.slow = 0

    def _roll(self, second: int) -> None:
        newest = self._newest
        if newest is None or second - newest >= self._size:
            self.clear()
        elif second > newest:
            totals, fails, slows, size = self._totals, self._fails, self._slows, self._size
            for s in range(newest + 1, second + 1):
                i = s % size
                self.total -= totals[i]
                self.failed -= fails[i]
                self.slow -= slows[i]
                totals[i] = fails[i] = slows[i] = 0
        else:
            # Only a misbehaving custom clock steps back; its second's bucket is
            # still in the window (or overwritten), so nothing needs to roll.
            return
        self._newest = second
