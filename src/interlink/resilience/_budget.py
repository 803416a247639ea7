"""``RetryBudget``: retries may add at most a fixed share of load on top of a small floor.

Semantics follow Finagle's ``RetryBudget``: every request deposits, every
retry withdraws, deposits and withdrawals expire after ``ttl`` (10 s), and a
retry may go while

    retries in the last ttl + 1 <= ratio * requests in the last ttl + min_per_second * ttl

With the defaults (20 % on top of 10 retries per second) an outage at 1,000
calls per second causes at most ~200 + 10 retries per second instead of
``max_attempts - 1`` times the load. Envoy's ``retry_budget`` and gRPC A6's
retry throttling make the same trade; resilience4j (#172) and Polly (#2348)
have no budget at all.

The counts live behind ``BudgetStore``, a four-member protocol, with
``MemoryBudgetStore`` as the in-process implementation. A shared backend
(Redis, say) implements the same protocol and is passed as ``store=``; no
policy changes. Its methods are synchronous because they run on every call:
a networked store keeps a local view and syncs it in the background rather
than making a round trip per request.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import ParamSpec, Protocol, TypeVar, runtime_checkable

from interlink.core.clock import Clock
from interlink.core.errors import ConfigError
from interlink.resilience import _validate as check
from interlink.resilience._policy import Policy

__all__ = ["BudgetStore", "MemoryBudgetStore", "RetryBudget"]

P = ParamSpec("P")
T = TypeVar("T")

# ratio * requests is a float: 0.29 * 100 must still allow 29 retries.
_EPSILON = 1e-9


@runtime_checkable
class BudgetStore(Protocol):
    """Where a ``RetryBudget`` keeps its counts.

    ``ttl`` is the window in seconds; ``now`` is the budget clock's monotonic
    time (a cross-process store may use its own time instead). Implement
    ``try_withdraw`` atomically: check and count in one step.
    """

    @property
    def ttl(self) -> float: ...

    def deposit(self, now: float) -> None:
        """Count one request."""

    def try_withdraw(self, now: float, ratio: float, reserve: float) -> bool:
        """Count one retry and return True if ``retries + 1 <= ratio * requests + reserve``."""

    def counts(self, now: float) -> tuple[int, int]:
        """``(requests, retries)`` within the window ending at ``now``."""


class MemoryBudgetStore:
    """In-process ``BudgetStore``: a ring of ``slices`` buckets spanning ``ttl`` seconds.

    Each bucket counts the requests and retries of ``ttl / slices`` seconds
    (1 s with the defaults ``ttl=10.0, slices=10``); running totals are kept,
    and buckets that slide out of the window are subtracted as time moves,
    so every operation is O(1) amortised. Entries expire between
    ``ttl - ttl / slices`` and ``ttl`` seconds after they were counted, as
    in Finagle's windowed adder.
    """

    __slots__ = (
        "_head",
        "_requests",
        "_retries",
        "_total_requests",
        "_total_retries",
        "_width",
        "ttl",
    )

    def __init__(self, ttl: float = 10.0, *, slices: int = 10) -> None:
        slices = check.count("MemoryBudgetStore", "slices", slices)
        self.ttl = check.seconds("MemoryBudgetStore", "ttl", ttl, allow_zero=False, strings=True)
        self._width = self.ttl / slices
        self._requests = [0] * slices
        self._retries = [0] * slices
        self._total_requests = 0
        self._total_retries = 0
        self._head: int | None = None

    def _roll(self, now: float) -> int:
        """Evict buckets older than the window; return the slot for ``now``."""
        index = int(now // self._width)
        if index == self._head:
            return index % len(self._requests)
        slices = len(self._requests)
        head = self._head
        if head is None or index - head >= slices:
            self._requests = [0] * slices
            self._retries = [0] * slices
            self._total_requests = self._total_retries = 0
            head = index
        elif index > head:
            for i in range(head + 1, index + 1):
                slot = i % slices
                self._total_requests -= self._requests[slot]
                self._total_retries -= self._retries[slot]
                self._requests[slot] = self._retries[slot] = 0
            head = index
        # index < head only if a caller's clock went back: count it in the newest bucket.
        self._head = head
        return head % slices

    def deposit(self, now: float) -> None:
        slot = self._roll(now)  # before reading self._requests: a roll may replace the list
        self._requests[slot] += 1
        self._total_requests += 1

    def try_withdraw(self, now: float, ratio: float, reserve: float) -> bool:
        slot = self._roll(now)
        if self._total_retries + 1 > ratio * self._total_requests + reserve + _EPSILON:
            return False
        self._retries[slot] += 1
        self._total_retries += 1
        return True

    def counts(self, now: float) -> tuple[int, int]:
        self._roll(now)
        return self._total_requests, self._total_retries

    def __repr__(self) -> str:
        return f"MemoryBudgetStore(ttl={self.ttl!r}, slices={len(self._requests)})"


class RetryBudget(Policy):
    """Caps retries (and hedges) to ``ratio`` of recent requests plus a floor.

    ``ratio`` (default 0.2, Finagle's ``percentCanRetry``) is the share of
    requests in the last ``ttl`` seconds (default 10 s) that may be retried;
    ``min_per_second`` (default 10, Finagle's ``minRetriesPerSec``) keeps
    retries possible at low traffic: ``min_per_second * ttl`` retries per
    window are always allowed. ``store`` holds the counts (default a
    ``MemoryBudgetStore(ttl)``; its ``ttl`` must equal ``ttl``).

    Share one budget among every ``Retry`` (and ``Hedge``) that calls the same
    backend: ``Retry(budget=budget)`` calls ``record_request()`` once per call
    and ``try_spend()`` before each retry. When the budget refuses, the retry
    gives up and raises the last error itself, and the budget emits
    ``retry_budget.exhausted`` (attributes ``requests``, ``retries`` in the
    window, ``ratio``, ``min_per_second``).

    ``call(fn)`` records a request and runs ``fn``: use it for traffic to the
    same backend that does not pass through a ``Retry`` (a retry already
    records its own calls; do not wrap it in the budget too). The budget's
    ``clock`` should be the clock of the policies that share it.
    """

    kind = "retry_budget"
    __slots__ = ("_reserve", "_store", "min_per_second", "ratio", "ttl")

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        store: BudgetStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.ratio = check.number("RetryBudget", "ratio", ratio)
        self.min_per_second = check.number("RetryBudget", "min_per_second", min_per_second)
        self.ttl = check.seconds("RetryBudget", "ttl", ttl, allow_zero=False, strings=True)
        if store is None:
            store = MemoryBudgetStore(self.ttl)
        elif not isinstance(store, BudgetStore):
            raise ConfigError(
                f"RetryBudget store must implement BudgetStore (ttl, deposit, try_withdraw, "
                f"counts), got {store!r}"
            )
        elif store.ttl != self.ttl:
            raise ConfigError(
                f"RetryBudget ttl={self.ttl!r} but its store's window is {store.ttl!r}: "
                "pass the same ttl to both"
            )
        self._store = store
        self._reserve = self.min_per_second * self.ttl

    def record_request(self) -> None:
        """Count one request (a first attempt); each adds ``ratio`` of a retry to the budget."""
        self._store.deposit(self.clock.monotonic())

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and an event) when there is none left."""
        now = self.clock.monotonic()
        if self._store.try_withdraw(now, self.ratio, self._reserve):
            return True
        if self.events.active:
            requests, retries = self._store.counts(now)
            self._emit(
                "exhausted",
                requests=requests,
                retries=retries,
                ratio=self.ratio,
                min_per_second=self.min_per_second,
            )
        return False

    @property
    def requests(self) -> int:
        """Requests counted in the last ``ttl`` seconds."""
        return self._store.counts(self.clock.monotonic())[0]

    @property
    def retries(self) -> int:
        """Retries spent in the last ``ttl`` seconds."""
        return self._store.counts(self.clock.monotonic())[1]

    @property
    def available(self) -> int:
        """How many retries the budget would allow right now."""
        requests, retries = self._store.counts(self.clock.monotonic())
        return max(0, math.floor(self.ratio * requests + self._reserve - retries + _EPSILON))

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Record a request, then run ``fn`` (for traffic that does not pass through a Retry)."""
        self._store.deposit(self.clock.monotonic())
        return await fn(*args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, min_per_second={self.min_per_second!r}, "
            f"ttl={self.ttl!r}, name={self.name!r})"
        )
