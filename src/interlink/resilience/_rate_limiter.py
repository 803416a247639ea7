"""``RateLimiter``: a token bucket in front of a call, with a fair queue and ``drain()``.

The bucket holds at most ``burst`` tokens and gains ``rate`` tokens per
second; each call takes one. Over any window of ``d`` seconds at most
``burst + rate * d`` calls go through, the first second after start included:
the bucket starts with ``initial_tokens`` (default 1), not full, because a
full bucket at start lets a whole burst out at once and then the steady rate
on top of it, which breaks "N per minute" upstream quotas (aiolimiter #240).

Callers that find no token wait in a FIFO queue for at most ``max_wait``
seconds (resilience4j's ``timeoutDuration``; the default 0 refuses at once,
as Polly's default ``QueueLimit`` of 0 does). A caller whose wait is known to
exceed its limit is refused without waiting. Only the waiter at the head of
the queue asks the bucket for a token, so a cancelled waiter has taken none,
and those behind it simply move up.

The bucket's state lives behind ``TokenBucketStore``, a four-method protocol
whose methods get the bucket's parameters (a ``TokenBucketSpec``) and the
current time. ``MemoryTokenBucketStore`` keeps it in this process. A store
shared between processes (Redis, a later issue) implements the same protocol
with an atomic script per call and plugs in through ``store=`` without any
change to the policy; its ``take`` is already awaited.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar

from interlink.core.clock import Clock
from interlink.core.errors import RateLimitedError
from interlink.resilience import _validate as check
from interlink.resilience._matching import ErrorMatcher, error_matcher
from interlink.resilience._policy import Policy
from interlink.resilience._timeout import deadline_remaining

__all__ = ["MemoryTokenBucketStore", "RateLimiter", "TokenBucketSpec", "TokenBucketStore"]

P = ParamSpec("P")
T = TypeVar("T")

# Float slack: a token due at t must be there at t even when (t - t0) * rate
# rounds to 0.9999999999. Worth at most a billionth of a token per call.
_EPS = 1e-9
_ONE_TOKEN = 1.0 - _EPS
_COMPACT_SLACK = 16


@dataclass(frozen=True, slots=True)
class TokenBucketSpec:
    """The parameters of one bucket: ``rate`` tokens per second, at most ``burst``
    held, ``initial`` held when the bucket is first used."""

    rate: float
    burst: float
    initial: float


class TokenBucketStore(Protocol):
    """Where a token bucket's state lives. Times are seconds; ``now`` is the policy
    clock's monotonic time (a store shared between processes should use its own
    clock instead, such as Redis ``TIME``, since monotonic clocks are per process).
    """

    async def take(self, spec: TokenBucketSpec, now: float) -> float:
        """Take one token and return 0.0 if the bucket holds one at ``now``;
        otherwise take nothing and return the seconds until it will."""
        ...

    async def wait_time(self, spec: TokenBucketSpec, now: float, tokens: int) -> float:
        """Seconds from ``now`` until the ``tokens``-th caller in line gets its
        token, if each takes one as soon as it is there (0.0 if the bucket holds
        that many already); takes nothing."""
        ...

    async def drain(self, spec: TokenBucketSpec, now: float, hold: float) -> None:
        """Empty the bucket at ``now`` and add nothing for ``hold`` seconds (a
        hold already running that ends later is kept)."""
        ...

    def available(self, spec: TokenBucketSpec, now: float) -> float:
        """Tokens held at ``now``, as last known (a shared store may answer from
        its last reply rather than ask again)."""
        ...


class MemoryTokenBucketStore:
    """A ``TokenBucketStore`` in this process's memory. Policies given the same
    instance share its tokens."""

    __slots__ = ("_stamp", "_tokens")

    def __init__(self) -> None:
        self._tokens = 0.0
        # Time up to which tokens have been added; after drain(hold) it lies ahead.
        self._stamp: float | None = None

    def _level(self, spec: TokenBucketSpec, now: float) -> tuple[float, float]:
        stamp = self._stamp
        if stamp is None:
            return spec.initial, now
        if now > stamp:
            return min(spec.burst, self._tokens + (now - stamp) * spec.rate), now
        return self._tokens, stamp

    async def take(self, spec: TokenBucketSpec, now: float) -> float:
        # _level inlined: this runs on every call.
        stamp = self._stamp
        if stamp is None:
            tokens = spec.initial
            self._stamp = stamp = now
        elif now > stamp:
            tokens = self._tokens + (now - stamp) * spec.rate
            if tokens > spec.burst:
                tokens = spec.burst
            self._stamp = stamp = now
        else:
            tokens = self._tokens
        if tokens >= _ONE_TOKEN:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (stamp - now) + (1.0 - tokens) / spec.rate

    async def wait_time(self, spec: TokenBucketSpec, now: float, tokens: int) -> float:
        held, stamp = self._level(spec, now)
        if tokens - held <= _EPS:
            return 0.0
        return (stamp - now) + (tokens - held) / spec.rate

    async def drain(self, spec: TokenBucketSpec, now: float, hold: float) -> None:
        _, stamp = self._level(spec, now)
        self._tokens = 0.0
        self._stamp = max(stamp, now + hold)

    def available(self, spec: TokenBucketSpec, now: float) -> float:
        return max(0.0, self._level(spec, now)[0])

    def __repr__(self) -> str:
        return f"MemoryTokenBucketStore(tokens={self._tokens:.3f})"


class _Waiter:
    __slots__ = ("deadline", "future", "retry_after")

    def __init__(self, deadline: float, future: asyncio.Future[bool]) -> None:
        self.deadline = deadline
        self.future = future
        self.retry_after = 0.0


def _hold_from(exc: BaseException) -> float:
    """The upstream's back-off carried by ``exc`` (its ``retry_after`` seconds), else 0."""
    hold = getattr(exc, "retry_after", None)
    if isinstance(hold, int | float) and not isinstance(hold, bool) and 0 < hold < math.inf:
        return float(hold)
    return 0.0


class RateLimiter(Policy):
    """Admit calls at ``rate`` per second with bursts of up to ``burst``.

    - ``rate`` (tokens per second, default 10.0, > 0).
    - ``burst`` (tokens, default ``None`` = ``max(1.0, rate)``: one second's
      worth, Guava ``SmoothBursty``'s ``maxBurstSeconds`` of 1; >= 1).
    - ``max_wait`` (seconds, default 0.0 = refuse at once; ``math.inf`` waits
      without limit). A running ``Deadline`` shortens it to the time left.
    - ``initial_tokens`` (default ``None`` = 1.0: the first call passes, the
      next ones are paced, as in Guava; pass ``burst`` to start full as Go's
      ``rate.Limiter`` and .NET's token bucket do; between 0 and ``burst``).
    - ``drain_on`` (default ``None``): errors (type, tuple or predicate) from
      the call that mean the upstream itself limits us (a 429); on one, the
      limiter drains as ``drain(retry_after)`` would, with the error's own
      ``retry_after`` attribute when it has a number there.
    - ``store`` (default a new ``MemoryTokenBucketStore``): where the bucket
      lives; a shared store makes several limiters one bucket, and a store
      shared between processes (Redis) plugs in here with no change to this
      class.

    A refused call raises ``RateLimitedError`` whose ``retry_after`` is the
    time until this caller would have had its token.

    Events (only built when someone listens): ``rate_limiter.queued`` (``wait``:
    expected seconds), ``rate_limiter.rejected`` (``wait``, ``max_wait``) and
    ``rate_limiter.drained`` (``hold``).
    """

    kind = "rate_limiter"
    __slots__ = (
        "_drain_on",
        "_queue",
        "_spec",
        "_store",
        "_waiting",
        "burst",
        "max_wait",
        "rate",
    )

    def __init__(
        self,
        *,
        rate: float = 10.0,
        burst: float | None = None,
        max_wait: float = 0.0,
        initial_tokens: float | None = None,
        drain_on: ErrorMatcher | None = None,
        store: TokenBucketStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        owner = "RateLimiter"
        self.rate = check.number(owner, "rate", rate, low_inclusive=False, unit="tokens per second")
        self.burst = (
            max(1.0, self.rate)
            if burst is None
            else check.number(owner, "burst", burst, low=1.0, unit="tokens")
        )
        tokens = (
            1.0
            if initial_tokens is None
            else check.number(
                owner,
                "initial_tokens",
                initial_tokens,
                high=self.burst,
                high_inclusive=True,
                unit="tokens",
            )
        )
        self.max_wait = check.seconds(owner, "max_wait", max_wait, allow_zero=True, allow_inf=True)
        self._spec = TokenBucketSpec(self.rate, self.burst, tokens)
        self._drain_on = (
            None
            if drain_on is None
            else error_matcher(drain_on, owner="RateLimiter", arg="drain_on")
        )
        self._store: TokenBucketStore = store if store is not None else MemoryTokenBucketStore()
        self._waiting = 0
        self._queue: deque[_Waiter] = deque()

    @property
    def available(self) -> float:
        """Tokens in the bucket now (fractional: 0.5 means half-way to the next)."""
        return self._store.available(self._spec, self.clock.monotonic())

    @property
    def waiting(self) -> int:
        """Callers queued for a token."""
        return self._waiting

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if not self._waiting:
            wait = await self._store.take(self._spec, self.clock.monotonic())
            if wait:
                await self._wait_for_token(wait)
        else:
            await self._wait_for_token(None)
        if self._drain_on is None:
            return await fn(*args, **kwargs)
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if self._drain_on(exc):
                await self.drain(_hold_from(exc))
            raise

    async def drain(self, retry_after: float = 0.0) -> None:
        """Empty the bucket now: the next token comes ``1/rate`` seconds later, or
        ``retry_after + 1/rate`` seconds later when the upstream said how long to
        back off (an HTTP 429's ``Retry-After``). Waiters stay queued in order;
        those who can no longer get a token within their ``max_wait`` are refused
        at once."""
        hold = check.seconds("RateLimiter.drain", "retry_after", retry_after, allow_zero=True)
        now = self.clock.monotonic()
        await self._store.drain(self._spec, now, hold)
        if self.events.active:
            self._emit("drained", hold=hold)
        # The head re-checks its own limit when it wakes; the rest are judged here.
        position = 1
        for waiter in list(self._queue):
            future = waiter.future
            if future.done():
                continue
            position += 1
            wait = await self._store.wait_time(self._spec, now, position)
            if now + wait > waiter.deadline + _EPS and not future.done():
                waiter.retry_after = wait
                future.set_result(False)
                self._forget()
                position -= 1

    async def _wait_for_token(self, wait: float | None) -> None:
        clock = self.clock
        now = clock.monotonic()
        ahead = self._waiting
        if wait is None:
            wait = await self._store.wait_time(self._spec, now, ahead + 1)
        limit = self.max_wait
        left = deadline_remaining(clock)
        if left is not None and left < limit:
            limit = max(left, 0.0)
        if wait > limit + _EPS:
            raise self._rejected(wait, limit)
        deadline = now + limit
        self._waiting += 1
        if self.events.active:
            self._emit("queued", wait=wait)
        if ahead:
            waiter = _Waiter(deadline, asyncio.get_running_loop().create_future())
            self._queue.append(waiter)
            try:
                my_turn = await waiter.future
            except asyncio.CancelledError:
                if waiter.future.cancelled():
                    self._forget()
                elif waiter.future.result():
                    self._leave_head()
                raise
            if not my_turn:
                raise self._rejected(waiter.retry_after, limit)
        try:
            # Head of the queue: only it asks the bucket, so tokens go in order.
            while True:
                now = clock.monotonic()
                wait = await self._store.take(self._spec, now)
                if not wait:
                    return
                if now + wait > deadline + _EPS:
                    raise self._rejected(wait, limit)
                await clock.sleep(wait)
        finally:
            self._leave_head()

    def _leave_head(self) -> None:
        self._waiting -= 1
        queue = self._queue
        while queue:
            future = queue.popleft().future
            if not future.done():
                future.set_result(True)
                return

    def _forget(self) -> None:
        self._waiting -= 1
        queue = self._queue
        if len(queue) > 2 * self._waiting + _COMPACT_SLACK:
            self._queue = deque(w for w in queue if not w.future.done())

    def _rejected(self, wait: float, limit: float) -> RateLimitedError:
        if self.events.active:
            self._emit("rejected", wait=wait, max_wait=limit)
        return RateLimitedError(
            f"{self.name}: no token within {limit:.3f}s (next in {wait:.3f}s)",
            retry_after=wait,
            policy=self.name,
        )

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self.rate}, burst={self.burst}, max_wait={self.max_wait},"
            f" name={self.name!r})"
        )
