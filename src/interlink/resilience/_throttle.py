"""``AdaptiveThrottle``: client-side throttling from the Google SRE book ("Handling Overload").

The client counts, over the last ``window`` seconds (two minutes in the book),
the ``requests`` it sent and the ``accepts`` the backend answered, and drops a
new call locally with probability::

    max(0, (requests - k * accepts) / (requests + 1))

``k`` = 2 means the client starts dropping once the backend refuses more than
half of what it gets; lower ``k`` is more aggressive. Local drops raise
``ThrottledLocallyError`` and are not requests, so as the backend recovers
(more accepts) or the window slides past the bad period, the drop rate falls
back to zero on its own.

The window is a ring of buckets about one second wide; buckets that fall out of
the window are cleared when the ring is next read or written, so an idle
throttle forgets old failures without a timer.
"""

from __future__ import annotations

import math
import random as _random_module
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from interlink.core.clock import Clock
from interlink.core.errors import RejectedError, ThrottledLocallyError
from interlink.resilience import _validate as check
from interlink.resilience._matching import ErrorMatcher, error_matcher
from interlink.resilience._policy import Policy

__all__ = ["AdaptiveThrottle", "is_overload"]

P = ParamSpec("P")
T = TypeVar("T")

_OVERLOAD_STATUSES = frozenset({429, 503})


def is_overload(exc: BaseException) -> bool:
    """The default ``overloaded_on``: did the backend (or a policy nearer to it) refuse?

    True for an error carrying an HTTP status of 429 or 503 in ``status`` or
    ``status_code`` (aiohttp's ``ClientResponseError.status``, httpx's
    ``response.status_code`` when re-raised by interlink's client), and for
    interlink's own ``RejectedError`` raised by a policy inside the throttle
    (an open breaker or a full bulkhead means the backend is not taking work).
    Anything else, a 404 or a validation error included, proves the backend
    answered, so it counts as accepted.
    """
    if isinstance(exc, RejectedError):
        return True
    status = getattr(exc, "status", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    return status in _OVERLOAD_STATUSES


class AdaptiveThrottle(Policy):
    """Drop calls locally, before they reach an overloaded backend (SRE book).

    - ``k`` (default 2.0, the book's K; >= 1): how many requests per accept the
      client lets through before it starts dropping.
    - ``window`` (seconds, default 120.0, the book's two minutes; > 0): the
      span over which requests and accepts are counted, in buckets of about a
      second.
    - ``min_requests`` (default 0, >= 0): no local drops while the window holds
      fewer requests than this (the ``requests + 1`` denominator already damps
      low volumes; raise it for clients that send a few calls a minute).
    - ``overloaded_on`` (type, tuple of types or predicate; default
      ``is_overload``): the errors that mean the backend refused the request.
      Every other error, and every return, counts as accepted. A cancelled
      call counts as nothing.
    - ``random`` (a ``random.Random``, default the ``random`` module's): the
      source of the drop decision; pass a seeded one in tests.

    A local drop raises ``ThrottledLocallyError`` with ``retry_after=None``
    (the decision is a coin toss: an immediate retry may pass).

    Counters over the window: ``requests``, ``accepts``, ``server_rejections``
    (requests not accepted) and ``local_rejections`` (local drops, counted
    apart); ``drop_probability`` is the current chance of a local drop.

    Events (only built when someone listens): ``adaptive_throttle.rejected``
    with ``probability``, ``requests`` and ``accepts``.
    """

    kind = "adaptive_throttle"
    __slots__ = (
        "_accepts",
        "_epoch",
        "_index",
        "_is_overload",
        "_locals",
        "_next_roll",
        "_random",
        "_requests",
        "_total_accepts",
        "_total_locals",
        "_total_requests",
        "_width",
        "k",
        "min_requests",
        "window",
    )

    def __init__(
        self,
        *,
        k: float = 2.0,
        window: float = 120.0,
        min_requests: int = 0,
        overloaded_on: ErrorMatcher = is_overload,
        random: _random_module.Random | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.k = check.number("AdaptiveThrottle", "k", k, low=1.0)
        self.window = check.seconds("AdaptiveThrottle", "window", window, allow_zero=False)
        self.min_requests = check.count("AdaptiveThrottle", "min_requests", min_requests, minimum=0)
        self._is_overload = error_matcher(
            overloaded_on, owner="AdaptiveThrottle", arg="overloaded_on"
        )
        self._random = (random if random is not None else _random_module).random
        buckets = max(1, math.ceil(self.window))
        self._width = self.window / buckets
        self._requests = [0] * buckets
        self._accepts = [0] * buckets
        self._locals = [0] * buckets
        self._total_requests = 0
        self._total_accepts = 0
        self._total_locals = 0
        # Where the window stands: the current bucket's number since time 0, its
        # index in the ring, and the time at which the next bucket begins.
        self._epoch = int(self.clock.monotonic() // self._width)
        self._index = self._epoch % buckets
        self._next_roll = (self._epoch + 1) * self._width

    @property
    def requests(self) -> int:
        """Requests sent to the backend within the window (local drops excluded)."""
        self._current()
        return self._total_requests

    @property
    def accepts(self) -> int:
        """Requests the backend accepted within the window."""
        self._current()
        return self._total_accepts

    @property
    def server_rejections(self) -> int:
        """Requests the backend refused (``overloaded_on``) within the window."""
        self._current()
        return self._total_requests - self._total_accepts

    @property
    def local_rejections(self) -> int:
        """Calls this throttle dropped itself within the window."""
        self._current()
        return self._total_locals

    @property
    def drop_probability(self) -> float:
        """The chance that a call made now is dropped locally."""
        self._current()
        return self._probability()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        clock = self.clock
        if clock.monotonic() >= self._next_roll:
            self._roll()
        if self._total_requests > self._total_accepts * self.k:
            self._maybe_drop()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self._record(accepted=not self._is_overload(exc))
            raise
        # _record inlined: the success path. Outcomes are counted when they
        # arrive: a call still in flight has none yet, and counting it as
        # refused would inflate the drop rate.
        if clock.monotonic() >= self._next_roll:
            self._roll()
        index = self._index
        self._requests[index] += 1
        self._accepts[index] += 1
        self._total_requests += 1
        self._total_accepts += 1
        return result

    def _maybe_drop(self) -> None:
        probability = self._probability()
        if self._random() < probability:
            self._locals[self._index] += 1
            self._total_locals += 1
            if self.events.active:
                self._emit(
                    "rejected",
                    probability=probability,
                    requests=self._total_requests,
                    accepts=self._total_accepts,
                )
            raise ThrottledLocallyError(
                f"{self.name}: dropped locally (probability {probability:.2f}: the backend"
                f" accepted {self._total_accepts} of {self._total_requests} recent requests)",
                policy=self.name,
            )

    def _probability(self) -> float:
        requests = self._total_requests
        if requests < self.min_requests:
            return 0.0
        return max(0.0, (requests - self.k * self._total_accepts) / (requests + 1))

    def _record(self, *, accepted: bool) -> None:
        index = self._current()
        self._requests[index] += 1
        self._total_requests += 1
        if accepted:
            self._accepts[index] += 1
            self._total_accepts += 1

    def _current(self) -> int:
        """Age the window to now; return the current bucket's index."""
        if self.clock.monotonic() >= self._next_roll:
            self._roll()
        return self._index

    def _roll(self) -> None:
        """Move to the bucket of the present, clearing those that left the window."""
        epoch = int(self.clock.monotonic() // self._width)
        size = len(self._requests)
        if epoch - self._epoch >= size:
            self._requests = [0] * size
            self._accepts = [0] * size
            self._locals = [0] * size
            self._total_requests = self._total_accepts = self._total_locals = 0
        else:
            for stale in range(self._epoch + 1, epoch + 1):
                i = stale % size
                self._total_requests -= self._requests[i]
                self._total_accepts -= self._accepts[i]
                self._total_locals -= self._locals[i]
                self._requests[i] = self._accepts[i] = self._locals[i] = 0
        self._epoch = epoch
        self._index = epoch % size
        self._next_roll = (epoch + 1) * self._width

    def __repr__(self) -> str:
        return f"AdaptiveThrottle(k={self.k}, window={self.window}, name={self.name!r})"
