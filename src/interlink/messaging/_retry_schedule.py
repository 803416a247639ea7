"""``RetrySchedule``: how long a failed message waits before its next attempt.

The wait is computed here but stored by the broker (``Delivery.retry(delay)``
keeps it in the broker's storage or in a RabbitMQ delay queue), so a schedule
survives a restart of the worker: nothing sleeps in this process's memory.

The exponential form reuses ``interlink.resilience``'s backoff
(``_backoff.jittered_delay``): capped first, then jittered, so messages that
reach the cap stay spread instead of retrying in lock step.

The default (``RetrySchedule.default()``), read against research/messaging.md (b):

- first delay 15 s, like Dramatiq: long enough for a restarting dependency
  (a deploy, a failover) to come back, where Temporal's and DBOS' 1 s mostly
  re-hits the same outage (they retry in-process, we pay a broker round trip);
- growth x2, as every anchor that grows does;
- cap 1 h (DBOS' cap): Dramatiq's 7 days belongs with its 20 retries; with
  the worker's default of 5 attempts the cap is only reached when a user
  raises ``max_attempts``, and an hour keeps a retried message within a
  working day of its failure;
- "equal" jitter: ``d/2 + U(0, d/2)``. Full jitter (``U(0, d)``) can draw a
  near-zero wait, which for a queue is the hot loop behaviour 11 forbids
  (cozy-stack#4827 burned its delivery limit in milliseconds); equal jitter
  keeps every wait at least half the nominal one and still spreads a burst.

With 5 attempts the default waits about 15, 30, 60 and 120 s (each between
half and all of that): a message survives roughly 2 to 4 minutes of outage
before it is dead-lettered, and replay is there for longer ones.
"""

from __future__ import annotations

import random as _random
from collections.abc import Mapping, Sequence
from typing import Any

from interlink.core.errors import ConfigError
from interlink.resilience import _validate as check
from interlink.resilience._backoff import capped_exponential, jittered_delay

__all__ = ["RetrySchedule"]

_OWNER = "RetrySchedule"
_JITTERS = ("none", "full", "equal")

DEFAULT_INITIAL = 15.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_DELAY = 3600.0
DEFAULT_JITTER = "equal"


class RetrySchedule:
    """The wait before each retry of a message: a fixed list, or exponential with jitter.

    ``delay(attempt)`` is the wait after attempt ``attempt`` (1-based) failed,
    before attempt ``attempt + 1``:

    - ``RetrySchedule.fixed(["1s", "10s", "1m"])``: the listed waits, the last
      one repeating (``[]`` is not allowed; ``[0]`` retries at once).
    - ``RetrySchedule.exponential(initial, multiplier, max_delay, jitter)``:
      ``min(max_delay, initial * multiplier ** (attempt - 1))``, then jittered:
      ``"none"`` (exactly that), ``"equal"`` (between half and all of it) or
      ``"full"`` (anywhere from 0 to it). Never above ``max_delay``.
    - ``RetrySchedule.default()``: exponential, 15 s x2 capped at 1 h, equal
      jitter (why: see the module docstring).

    Durations are seconds or strings like ``"250ms"``, ``"10s"``, ``"1h"``.
    ``RetrySchedule.coerce`` turns config values into a schedule: a list is a
    fixed schedule, a mapping the keyword arguments of ``exponential``.
    """

    __slots__ = ("_delays", "_initial", "_jitter", "_max_delay", "_multiplier", "_random")

    def __init__(
        self,
        *,
        delays: Sequence[float | str] | None = None,
        initial: float | str = DEFAULT_INITIAL,
        multiplier: float = DEFAULT_MULTIPLIER,
        max_delay: float | str = DEFAULT_MAX_DELAY,
        jitter: str = DEFAULT_JITTER,
        random: _random.Random | None = None,
    ) -> None:
        self._random = random or _random.Random()
        self._delays: tuple[float, ...] | None = None
        if delays is not None:
            if isinstance(delays, str | bytes) or not isinstance(delays, Sequence) or not delays:
                check.fail(_OWNER, "delays", "a non-empty list of durations", delays)
            self._delays = tuple(
                check.seconds(_OWNER, f"delays[{i}]", d, allow_zero=True, strings=True)
                for i, d in enumerate(delays)
            )
        self._initial = check.seconds(_OWNER, "initial", initial, allow_zero=True, strings=True)
        self._multiplier = check.number(_OWNER, "multiplier", multiplier, low=1.0)
        self._max_delay = check.seconds(
            _OWNER, "max_delay", max_delay, allow_zero=True, strings=True
        )
        check.ordered(_OWNER, "max_delay", self._max_delay, ">=", "initial", self._initial)
        self._jitter = check.one_of(_OWNER, "jitter", jitter, _JITTERS)

    @classmethod
    def fixed(
        cls, delays: Sequence[float | str], *, random: _random.Random | None = None
    ) -> RetrySchedule:
        """Wait ``delays[0]`` after the first failure, ``delays[1]`` after the second, ...

        The last wait repeats for every later attempt.
        """
        return cls(delays=delays, random=random)

    @classmethod
    def exponential(
        cls,
        initial: float | str = DEFAULT_INITIAL,
        multiplier: float = DEFAULT_MULTIPLIER,
        max_delay: float | str = DEFAULT_MAX_DELAY,
        jitter: str = DEFAULT_JITTER,
        *,
        random: _random.Random | None = None,
    ) -> RetrySchedule:
        """``initial * multiplier ** (attempt - 1)``, capped at ``max_delay``, then jittered."""
        return cls(
            initial=initial,
            multiplier=multiplier,
            max_delay=max_delay,
            jitter=jitter,
            random=random,
        )

    @classmethod
    def default(cls) -> RetrySchedule:
        """Exponential from 15 s, x2, capped at 1 h, equal jitter."""
        return cls.exponential()

    @classmethod
    def coerce(cls, value: object) -> RetrySchedule:
        """A schedule from config: ``None`` (the default), a schedule, a list or a mapping.

        A list (``["1s", "10s"]``) is ``fixed``; a mapping
        (``{"initial": "1s", "max_delay": "5m", "jitter": "full"}``) gives the
        keyword arguments of ``exponential``. Anything else is a ``ConfigError``.
        """
        if value is None:
            return cls.default()
        if isinstance(value, RetrySchedule):
            return value
        if isinstance(value, Mapping):
            known = {"initial", "multiplier", "max_delay", "jitter"}
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                raise ConfigError(
                    f"{_OWNER} has no option {unknown[0]!r}; "
                    f"known options: {', '.join(sorted(known))}"
                )
            options: dict[str, Any] = dict(value)
            return cls.exponential(**options)
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return cls.fixed(value)
        raise ConfigError(
            "handler retry must be a RetrySchedule, a list of durations or a mapping of "
            f"exponential options, got {value!r}"
        )

    @property
    def is_fixed(self) -> bool:
        """Whether this is a fixed list of waits (else exponential)."""
        return self._delays is not None

    @property
    def max_delay(self) -> float:
        """The longest wait this schedule can give."""
        if self._delays is not None:
            return max(self._delays)
        return self._max_delay

    def nominal(self, attempt: int) -> float:
        """The wait after attempt ``attempt`` failed, before jitter (the top of its window)."""
        attempt = max(1, attempt)
        if self._delays is not None:
            return self._delays[min(attempt, len(self._delays)) - 1]
        return capped_exponential(attempt, self._initial, self._multiplier, self._max_delay)

    def window(self, attempt: int) -> tuple[float, float]:
        """The lowest and highest wait ``delay(attempt)`` can return."""
        top = self.nominal(attempt)
        if self._delays is not None or self._jitter == "none":
            return top, top
        if self._jitter == "equal":
            return top / 2.0, top
        return 0.0, top

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed, jitter applied."""
        if self._delays is not None:
            return self.nominal(attempt)
        return jittered_delay(
            self._jitter,
            max(1, attempt),
            initial=self._initial,
            multiplier=self._multiplier,
            cap=self._max_delay,
            rng=self._random,
            previous=self._initial,
        )

    def __repr__(self) -> str:
        if self._delays is not None:
            return f"RetrySchedule.fixed({list(self._delays)!r})"
        return (
            f"RetrySchedule.exponential(initial={self._initial!r}, "
            f"multiplier={self._multiplier!r}, max_delay={self._max_delay!r}, "
            f"jitter={self._jitter!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetrySchedule):
            return NotImplemented
        return repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))
