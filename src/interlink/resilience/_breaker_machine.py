"""The state machine under ``CircuitBreaker``: its state in a ``BreakerStore`` and every move.

``CircuitBreaker`` (``_breaker``) admits calls and judges their outcomes
against its thresholds; when a threshold says "open" or the probes say
"close", it asks this base class to move, as resilience4j's
``CircuitBreakerStateMachine`` does. Here lives how a move is made:

* every move is a compare-and-set on the store's ``generation``, so of two
  breakers sharing a store only one moves it and only that one emits the
  ``transition`` event; a move made by someone else is adopted (reason
  ``shared``) the next time the store is read;
* OPEN and HALF_OPEN end by time, lazily, when the state is next read, on the
  monotonic clock only;
* the open period grows with each re-open from half-open (a capped
  exponential, as a retry's backoff grows) and is jittered by up to 10%,
  never below ``open_for`` nor above ``max_open_for``; it is back to
  ``open_for`` once the breaker closes;
* entering CLOSED, HALF_OPEN, DISABLED or METRICS_ONLY starts a fresh window,
  while OPEN and FORCED_OPEN keep the one that explains why it is open;
* the manual states (``force_open``, ``disable``, ``metrics_only``, ``close``)
  are moves like the others.
"""

from __future__ import annotations

import math
from random import Random
from typing import Any

from interlink.core.clock import Clock
from interlink.resilience._backoff import capped_exponential
from interlink.resilience._breaker_state import (
    BreakerStore,
    BreakerView,
    CircuitState,
    MemoryBreakerStore,
    SlidingWindow,
)
from interlink.resilience._policy import Policy

__all__ = ["BreakerStateMachine"]

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
# Entering these starts a fresh window; OPEN and FORCED_OPEN keep the one that
# explains why the breaker is open (as resilience4j does).
_FRESH_WINDOW = frozenset({_CLOSED, _HALF_OPEN, CircuitState.DISABLED, CircuitState.METRICS_ONLY})
_JITTER = 0.1


class BreakerStateMachine(Policy):
    """A circuit breaker's state and its moves; ``CircuitBreaker`` decides when to move.

    Takes checked arguments: ``window`` (cleared on entering a fresh-window
    state), the open period (``open_for``, grown by ``multiplier`` per re-open up
    to ``max_open_for``, jittered with ``random``), ``max_wait_in_half_open``
    and the ``store`` (a new ``MemoryBreakerStore`` when ``None``).
    """

    __slots__ = (
        "_generation",
        "_known_state",
        "_max_open_for",
        "_max_wait_half_open",
        "_multiplier",
        "_open_for",
        "_random",
        "_store",
        "_window",
        "_would_open",
    )

    def __init__(
        self,
        *,
        window: SlidingWindow,
        open_for: float,
        multiplier: float,
        max_open_for: float,
        max_wait_in_half_open: float,
        random: Random | None,
        store: BreakerStore | None,
        name: str | None,
        clock: Clock | None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self._window = window
        self._open_for = open_for
        self._multiplier = multiplier
        self._max_open_for = max_open_for
        self._max_wait_half_open = max_wait_in_half_open
        self._random = random if random is not None else Random()
        self._store: BreakerStore = store if store is not None else MemoryBreakerStore()
        view = self._store.view()
        self._generation = view.generation
        self._known_state = view.state
        # Set by CircuitBreaker while METRICS_ONLY would have opened; a move clears it.
        self._would_open = False

    @property
    def state(self) -> CircuitState:
        """The current state; an elapsed open or half-open period is applied on read."""
        return self._current(self.clock.monotonic()).state

    @property
    def store(self) -> BreakerStore:
        """Where this breaker keeps its shareable state."""
        return self._store

    def force_open(self) -> None:
        """Reject every call with ``CircuitForcedOpenError`` until ``close()`` or ``reset()``."""
        self._manual(CircuitState.FORCED_OPEN, "manual")

    def disable(self) -> None:
        """Let every call through and record nothing, until another manual state."""
        self._manual(CircuitState.DISABLED, "manual")

    def metrics_only(self) -> None:
        """Let every call through, record outcomes, and emit ``would_open`` instead of opening."""
        self._manual(CircuitState.METRICS_ONLY, "manual")

    def close(self) -> None:
        """Close the breaker with a fresh window; the open period starts again from ``open_for``."""
        self._manual(_CLOSED, "manual")

    def _manual(self, to: CircuitState, reason: str, *, always: bool = False) -> None:
        view = self._store.view()
        if view.generation != self._generation:
            self._adopt(view)
        if always or view.state is not to:
            self._transition(view, to, reason, self.clock.monotonic())

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
        base = capped_exponential(reopens + 1, self._open_for, self._multiplier, self._max_open_for)
        # Jitter spreads the probes of many clients, but stays within
        # [open_for, max_open_for] so neither bound is ever broken.
        low = max(base * (1.0 - _JITTER), self._open_for)
        high = min(base * (1.0 + _JITTER), self._max_open_for)
        return self._random.uniform(low, high)
