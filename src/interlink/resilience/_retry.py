"""``Retry``: try again, with jittered exponential backoff, within a deadline and a budget.

Semantics follow resilience4j (``max_attempts`` counts the first call,
default 3) and gRPC A6 (full-jitter exponential backoff, server pushback, no
retry once a response is "committed", the deadline spans every attempt).
Beyond them:

- the delay is capped before it is jittered (see ``_backoff``), so clients at
  the cap stay spread out;
- a server's ``retry_after`` wins over the computed delay; one longer than
  ``max_retry_after`` or than the time left makes it give up at once,
  instead of sleeping into a wall (capping it silently is jcode #1183);
- a retry budget, shared among policies, bounds the extra load (Finagle);
- a non-idempotent call is retried only when the request never left;
- one ``Retry`` is safe to share among any number of concurrent calls: all
  per-call state lives in locals (tenacity #93 keeps it on the instance).
"""

from __future__ import annotations

import random as _random
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar, cast

from interlink.core.clock import Clock
from interlink.core.errors import (
    DeadlineExceededError,
    RejectedError,
    RetryExhaustedError,
)
from interlink.resilience import _validate as check
from interlink.resilience._backoff import JITTERS, jittered_delay
from interlink.resilience._budget import RetryBudget
from interlink.resilience._matching import ErrorMatcher, error_matcher
from interlink.resilience._policy import Policy
from interlink.resilience._timeout import deadline_remaining

__all__ = ["Retry", "current_attempt", "idempotent"]

P = ParamSpec("P")
T = TypeVar("T")


_ATTEMPT: ContextVar[int] = ContextVar("interlink_retry_attempt", default=1)
_IDEMPOTENT: ContextVar[bool | None] = ContextVar("interlink_idempotent", default=None)


def current_attempt() -> int:
    """The 1-based attempt number of the innermost ``Retry`` running the caller (1 outside any)."""
    return _ATTEMPT.get()


@contextmanager
def idempotent(value: bool = True) -> Iterator[None]:
    """Declare whether the calls made inside the block may safely run twice.

    Overrides the ``idempotent=`` of every ``Retry`` that decides within the
    block. ``with idempotent(False):`` is what an HTTP client uses for a POST
    or PATCH without an ``Idempotency-Key``: an error is then retried only if
    the request never left (see ``Retry``).
    """
    token = _IDEMPOTENT.set(value)
    try:
        yield
    finally:
        _IDEMPOTENT.reset(token)


def _default_retry_on(exc: BaseException) -> bool:
    # An inner Retry that gave up already retried: retrying it again multiplies
    # attempts (the SRE book: retry at one layer only). Attempt timeouts retry.
    return not isinstance(exc, RejectedError | DeadlineExceededError | RetryExhaustedError)


def _never_sent(exc: BaseException) -> bool:
    """True when the error proves the request did not reach the server."""
    sent = getattr(exc, "request_sent", None)
    if sent is not None:
        return sent is False
    return isinstance(exc, ConnectionRefusedError | socket.gaierror | RejectedError)


def _hint(exc: BaseException) -> float | None:
    """The server's ``retry_after`` in seconds, if the error carries a usable one."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None  # absent, not a number, or NaN
    return float(value)


class Retry(Policy):
    """Run the call again when it fails, up to ``max_attempts`` times in all.

    Arguments (seconds as floats):

    - ``max_attempts`` (3): attempts including the first; 1 disables retrying.
    - ``initial_delay`` (0.5), ``multiplier`` (2.0), ``max_delay`` (10.0): the
      wait before retry ``n`` is ``initial_delay * multiplier ** (n - 1)``,
      capped at ``max_delay``, then jittered.
    - ``jitter`` ("full"): "none" (``d``), "full" (``U(0, d)``), "equal"
      (``d/2 + U(0, d/2)``) or "decorrelated" (``U(initial_delay,
      min(max_delay, 3 * previous wait))``).
    - ``retry_on``: which exceptions to retry: a type, a tuple of types or a
      predicate. Default: every ``Exception`` except ``DeadlineExceededError``
      and an inner retry's ``RetryExhaustedError`` (one layer retries, not two).
      ``asyncio.CancelledError`` is never retried nor counted.
    - ``retry_on_result`` (None): a predicate; a result it accepts is retried
      like an error (``RetryExhaustedError.last_result`` holds the last one).
    - ``max_retry_after`` (60.0): the longest server-requested wait to honour.
    - ``budget`` (None): a ``RetryBudget`` shared with other policies.
    - ``idempotent`` (True): whether a repeated call is harmless; overridden
      per call by ``with idempotent(...)``.
    - ``retry_rejections`` (False): retry interlink's own ``RejectedError``
      (open circuit, full bulkhead, rate limit), waiting at least its
      ``retry_after``.
    - ``random``: the ``random.Random`` for jitter (tests pass a seeded one).

    An error is not retried, and is raised as it is, when: it does not match
    ``retry_on``; it has ``committed = True`` (the response had started); it
    has ``retryable = False`` or a negative ``retry_after`` (server pushback:
    don't retry); it is a rejection and ``retry_rejections`` is False; the call
    is not idempotent and the error does not show the request never left
    (``request_sent = False``, ``ConnectionRefusedError``, ``socket.gaierror``);
    or the budget refuses. Otherwise the wait is the error's ``retry_after``
    if it has one, else the backoff. ``RetryExhaustedError`` (``attempts``,
    ``elapsed``, ``retry_after``, ``last_result``; ``__cause__`` = last error)
    is raised when attempts run out, when the wait would end at or past the
    running ``Deadline``, or when ``retry_after > max_retry_after``; in the
    last two cases at once, without sleeping.

    Events: ``retry.attempt`` (attempt), ``retry.delay`` (attempt, seconds,
    reason: backoff | retry_after | rejection), ``retry.gave_up`` (reason:
    max_attempts | deadline | retry_after_too_long | not_retryable | budget,
    attempts, elapsed), ``retry.success`` (attempts).
    """

    kind = "retry"
    __slots__ = (
        "_random",
        "_should_retry",
        "budget",
        "idempotent",
        "initial_delay",
        "jitter",
        "max_attempts",
        "max_delay",
        "max_retry_after",
        "multiplier",
        "retry_on",
        "retry_on_result",
        "retry_rejections",
    )

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        initial_delay: float = 0.5,
        multiplier: float = 2.0,
        max_delay: float = 10.0,
        jitter: str = "full",
        retry_on: ErrorMatcher | None = None,
        retry_on_result: Callable[[object], bool] | None = None,
        max_retry_after: float = 60.0,
        budget: RetryBudget | None = None,
        idempotent: bool = True,
        retry_rejections: bool = False,
        random: _random.Random | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.max_attempts = check.count("Retry", "max_attempts", max_attempts)
        self.initial_delay = check.seconds(
            "Retry", "initial_delay", initial_delay, allow_zero=True, strings=True
        )
        self.max_delay = check.seconds(
            "Retry", "max_delay", max_delay, allow_zero=True, strings=True
        )
        check.ordered(
            "Retry", "max_delay", self.max_delay, ">=", "initial_delay", self.initial_delay
        )
        self.multiplier = check.number("Retry", "multiplier", multiplier, low=1.0)
        self.jitter = check.one_of("Retry", "jitter", jitter, JITTERS)
        self.retry_on = retry_on
        self._should_retry = (
            _default_retry_on
            if retry_on is None
            else error_matcher(retry_on, owner="Retry", arg="retry_on")
        )
        self.retry_on_result = check.callable_or_none(
            "Retry", "retry_on_result", retry_on_result, what="a predicate (result) -> bool"
        )
        self.max_retry_after = check.seconds(
            "Retry", "max_retry_after", max_retry_after, allow_zero=True, strings=True
        )
        self.budget = check.instance_or_none("Retry", "budget", budget, RetryBudget)
        for flag, value in (("idempotent", idempotent), ("retry_rejections", retry_rejections)):
            if not isinstance(value, bool):
                check.fail("Retry", flag, "True or False", value)
        self.idempotent = idempotent
        self.retry_rejections = retry_rejections
        random = check.instance_or_none("Retry", "random", random, _random.Random)
        self._random = random if random is not None else _random.Random()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        budget = self.budget
        if budget is not None:
            budget.record_request()
        started = self.clock.monotonic()
        if _ATTEMPT.get() != 1:
            # Inside a later attempt of an outer Retry: number our attempts ourselves.
            return await self._attempts(fn, args, kwargs, started, 0, None, cast(T, None))
        observed = self.events.active
        if observed:
            self._emit("attempt", attempt=1)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            error: Exception | None = exc
            result = cast(T, None)
        else:
            check = self.retry_on_result
            if check is None or not check(result):
                if observed:
                    self._emit("success", attempts=1)
                return result
            error = None
        # Leave the except block before sleeping, so later errors do not chain to this one.
        return await self._attempts(fn, args, kwargs, started, 1, error, result)

    async def _attempts(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        started: float,
        attempt: int,
        error: Exception | None,
        result: T,
    ) -> T:
        """Run further attempts; ``attempt`` have run so far, the last ending in ``error``/``result``."""
        previous = self.initial_delay  # decorrelated jitter's per-call state
        token = _ATTEMPT.set(max(attempt, 1))
        try:
            while True:
                if attempt:
                    plan = self._plan(attempt, error, result, started, previous)
                    if plan is None:
                        return result  # the budget refused a result-retry: keep the result
                    delay, reason, previous = plan
                    if self.events.active:
                        self._emit("delay", attempt=attempt, seconds=delay, reason=reason)
                    # observability (tracing): the wait and why, on the span (imported here:
                    # interlink.observability imports interlink.resilience).
                    from interlink.observability._tracing import retry_delay

                    retry_delay(attempt, delay, reason)
                    await self.clock.sleep(delay)
                attempt += 1
                _ATTEMPT.set(attempt)
                if self.events.active:
                    self._emit("attempt", attempt=attempt)
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    error = exc
                    continue
                check = self.retry_on_result
                if check is None or not check(result):
                    if self.events.active:
                        self._emit("success", attempts=attempt)
                    return result
                error = None
        finally:
            _ATTEMPT.reset(token)

    def _plan(
        self,
        attempt: int,
        error: Exception | None,
        result: object,
        started: float,
        previous: float,
    ) -> tuple[float, str, float] | None:
        """Decide what follows attempt ``attempt``: ``(delay, reason, backoff)`` to retry,
        ``None`` to return ``result``; raises to give up."""
        hint = None
        rejection = False
        if error is not None:
            rejection = isinstance(error, RejectedError)
            flag = _IDEMPOTENT.get()
            repeatable = self.idempotent if flag is None else flag
            if (
                (not self.retry_rejections if rejection else not self._should_retry(error))
                or getattr(error, "committed", False) is True
                or getattr(error, "retryable", True) is False
                or (not repeatable and not _never_sent(error))
            ):
                self._gave_up("not_retryable", attempt, started)
                raise error
            hint = _hint(error)
            if hint is not None and hint < 0:
                self._gave_up("not_retryable", attempt, started)
                raise error
        if attempt >= self.max_attempts:
            raise self._exhausted("max_attempts", attempt, started, error, result, hint)
        if hint is not None and hint > self.max_retry_after:
            raise self._exhausted("retry_after_too_long", attempt, started, error, result, hint)
        backoff = jittered_delay(
            self.jitter,
            attempt,
            initial=self.initial_delay,
            multiplier=self.multiplier,
            cap=self.max_delay,
            rng=self._random,
            previous=previous,
        )
        if hint is None:
            delay, reason = backoff, "backoff"
        elif rejection:
            delay, reason = max(backoff, hint), "rejection"
        else:
            delay, reason = hint, "retry_after"
        remaining = deadline_remaining(self.clock)
        if remaining is not None and delay >= remaining:
            raise self._exhausted("deadline", attempt, started, error, result, hint)
        budget = self.budget
        if budget is not None and not budget.try_spend():
            self._gave_up("budget", attempt, started)
            if error is not None:
                raise error
            return None
        return delay, reason, backoff

    def _gave_up(self, reason: str, attempt: int, started: float) -> float:
        elapsed = self.clock.monotonic() - started
        if self.events.active:
            self._emit("gave_up", reason=reason, attempts=attempt, elapsed=elapsed)
        return elapsed

    def _exhausted(
        self,
        reason: str,
        attempt: int,
        started: float,
        error: Exception | None,
        result: object,
        hint: float | None,
    ) -> RetryExhaustedError:
        elapsed = self._gave_up(reason, attempt, started)
        last = repr(error) if error is not None else f"result {result!r}"
        why = {
            "max_attempts": "no attempts left",
            "deadline": "the next attempt would start past the deadline",
            "retry_after_too_long": f"the server asked to wait {hint}s > max_retry_after",
        }[reason]
        exhausted = RetryExhaustedError(
            f"{self.name}: gave up after {attempt} attempt{'s' if attempt != 1 else ''} "
            f"in {elapsed:.3f}s ({why}); last: {last}",
            attempts=attempt,
            elapsed=elapsed,
            retry_after=hint,
            policy=self.name,
            last_result=None if error is not None else result,
        )
        exhausted.__cause__ = error
        exhausted.__suppress_context__ = True
        return exhausted

    def __repr__(self) -> str:
        return (
            f"Retry(max_attempts={self.max_attempts}, initial_delay={self.initial_delay!r}, "
            f"multiplier={self.multiplier!r}, max_delay={self.max_delay!r}, "
            f"jitter={self.jitter!r}, name={self.name!r})"
        )
