"""RateLimiter: behaviour 22 (no surprise burst, FIFO waiters, cancelled waiters use no token, drain)."""

from __future__ import annotations

import asyncio
import math

import pytest

from interlink.core.errors import ConfigError, RateLimitedError
from interlink.resilience import (
    Deadline,
    MemoryTokenBucketStore,
    RateLimiter,
    ResilienceEvent,
    TokenBucketSpec,
)
from interlink.testing import FakeClock

# Awaits that could hang if queueing broke go through ``clock.run``, which fails
# instead of waiting forever when nothing on the fake clock is left to wake them.


class Recorder:
    """The protected call: notes who ran and when."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ran: list[tuple[str, float]] = []

    async def work(self, name: str) -> str:
        self.ran.append((name, round(self.clock.monotonic() - 1000.0, 9)))
        return name

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.ran]


class Upstream429(Exception):
    status = 429

    def __init__(self, retry_after: object = None) -> None:
        super().__init__("too many requests")
        self.retry_after = retry_after


async def test_a_new_limiter_lets_one_call_through_then_paces(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, clock=clock)
    calls = Recorder(clock)
    assert await limiter.call(calls.work, "first") == "first"
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(limiter.call(calls.work, "second"))
    assert caught.value.retry_after == pytest.approx(0.1)
    assert caught.value.policy == "rate_limiter"
    assert calls.names == ["first"]

    await clock.advance(0.03)
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(limiter.call(calls.work, "third"))
    assert caught.value.retry_after == pytest.approx(0.07)
    await clock.advance(0.07)
    await limiter.call(calls.work, "fourth")
    assert calls.names == ["first", "fourth"]


async def test_starting_full_is_a_choice_and_gives_exactly_one_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, initial_tokens=10, clock=clock)
    calls = Recorder(clock)
    for i in range(10):
        await limiter.call(calls.work, f"c{i}")
    with pytest.raises(RateLimitedError):
        await clock.run(limiter.call(calls.work, "c10"))
    assert len(calls.ran) == 10


async def test_an_idle_bucket_refills_up_to_burst_and_no_further(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=5, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "warm-up")
    await clock.advance(60.0)
    assert limiter.available == 5.0
    for i in range(5):
        await limiter.call(calls.work, f"b{i}")
    with pytest.raises(RateLimitedError):
        await clock.run(limiter.call(calls.work, "over"))
    assert limiter.available == 0.0


async def test_waiters_get_tokens_first_come_first_served(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=1, max_wait=1.0, clock=clock)
    calls = Recorder(clock)
    names = [f"w{i}" for i in range(5)]
    tasks = []
    for name in names:
        tasks.append(asyncio.create_task(limiter.call(calls.work, name)))
        await clock.settle()
    assert limiter.waiting == 4
    await clock.advance(1.0)
    assert await clock.run(asyncio.gather(*tasks)) == names
    assert calls.ran == [("w0", 0.0), ("w1", 0.1), ("w2", 0.2), ("w3", 0.3), ("w4", 0.4)]
    assert limiter.waiting == 0


async def test_a_caller_whose_wait_would_exceed_max_wait_is_rejected_at_once(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rate=10.0, max_wait=0.25, clock=clock)
    calls = Recorder(clock)
    queued = [asyncio.create_task(limiter.call(calls.work, f"q{i}")) for i in range(3)]
    await clock.settle()  # tokens at 0, 0.1 and 0.2 are spoken for
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(limiter.call(calls.work, "late"))
    assert clock.monotonic() == 1000.0
    assert caught.value.retry_after == pytest.approx(0.3)
    await clock.advance(1.0)
    await clock.run(asyncio.gather(*queued))
    assert calls.names == ["q0", "q1", "q2"]


@pytest.mark.parametrize("victim", [1, 2])
async def test_a_cancelled_waiter_uses_no_token_and_the_rest_move_up(
    clock: FakeClock, victim: int
) -> None:
    limiter = RateLimiter(rate=10.0, burst=1, max_wait=10.0, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "w0")
    tasks = []
    for i in (1, 2, 3):
        tasks.append(asyncio.create_task(limiter.call(calls.work, f"w{i}")))
        await clock.settle()
    await clock.advance(0.05)
    tasks[victim - 1].cancel()  # w1 is the head (asleep on the clock), w2 is queued behind it
    await clock.advance(1.0)
    results = await clock.run(asyncio.gather(*tasks, return_exceptions=True))
    assert isinstance(results[victim - 1], asyncio.CancelledError)
    survivors = [n for n in ("w1", "w2", "w3") if n != f"w{victim}"]
    assert calls.ran == [("w0", 0.0), (survivors[0], 0.1), (survivors[1], 0.2)]
    # The token the cancelled caller would have had is still in the bucket.
    assert limiter.available == pytest.approx(1.0)


async def test_a_promoted_waiter_cancelled_at_that_moment_passes_its_turn_on(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rate=10.0, burst=1, max_wait=10.0, clock=clock)
    calls = Recorder(clock)
    tasks: dict[str, asyncio.Task[str]] = {}

    async def head_work(name: str) -> str:
        # The head has just handed its place to "unlucky", which has not run yet.
        tasks["unlucky"].cancel()
        return await calls.work(name)

    await limiter.call(calls.work, "w0")
    tasks["head"] = asyncio.create_task(limiter.call(head_work, "head"))
    await clock.settle()
    tasks["unlucky"] = asyncio.create_task(limiter.call(calls.work, "unlucky"))
    tasks["last"] = asyncio.create_task(limiter.call(calls.work, "last"))
    await clock.settle()
    await clock.advance(1.0)
    results = await clock.run(asyncio.gather(*tasks.values(), return_exceptions=True))
    assert isinstance(results[1], asyncio.CancelledError)
    assert calls.ran == [("w0", 0.0), ("head", 0.1), ("last", 0.2)]
    assert limiter.waiting == 0


async def test_drain_empties_the_bucket_until_the_next_refill(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, initial_tokens=10, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "ok")
    assert limiter.available == 9.0
    await limiter.drain()  # the upstream answered 429
    assert limiter.available == 0.0
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(limiter.call(calls.work, "refused"))
    assert caught.value.retry_after == pytest.approx(0.1)
    await clock.advance(0.1)
    await limiter.call(calls.work, "next refill")
    assert calls.names == ["ok", "next refill"]


async def test_drain_with_retry_after_holds_every_token_back(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, initial_tokens=10, clock=clock)
    calls = Recorder(clock)
    await limiter.drain(retry_after=2.0)
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(limiter.call(calls.work, "early"))
    assert caught.value.retry_after == pytest.approx(2.1)
    await clock.advance(1.0)
    await limiter.drain(retry_after=0.0)  # a shorter hold never cuts a longer one short
    await clock.advance(1.05)
    assert limiter.available == pytest.approx(0.5)
    await clock.advance(0.05)
    await limiter.call(calls.work, "after the hold")
    assert calls.ran == [("after the hold", 2.1)]


async def test_drain_refuses_queued_callers_who_can_no_longer_make_it(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=1, max_wait=0.5, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "w0")
    tasks = []
    for i in (1, 2, 3):
        tasks.append(asyncio.create_task(limiter.call(calls.work, f"w{i}")))
        await clock.settle()
    tasks[1].cancel()  # a gap in the queue must not count as a position
    await clock.settle()
    await limiter.drain(retry_after=0.2)  # next tokens at 0.3, 0.4: w3's limit is 0.5
    await clock.advance(1.0)
    results = await clock.run(asyncio.gather(*tasks, return_exceptions=True))
    assert calls.ran == [("w0", 0.0), ("w1", 0.3), ("w3", 0.4)]
    assert isinstance(results[1], asyncio.CancelledError)

    # A longer hold: the head learns it when it wakes, the one behind at once.
    await limiter.call(calls.work, "empties the bucket")
    tasks = []
    for i in (4, 5):
        tasks.append(asyncio.create_task(limiter.call(calls.work, f"w{i}")))
        await clock.settle()
    await limiter.drain(retry_after=5.0)
    await clock.settle()
    assert tasks[1].done()
    assert isinstance(tasks[1].exception(), RateLimitedError)
    await clock.advance(1.0)
    assert isinstance(tasks[0].exception(), RateLimitedError)
    assert limiter.waiting == 0


async def test_a_caller_refused_by_a_drain_and_cancelled_at_once_just_leaves(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rate=10.0, burst=1, max_wait=0.5, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "w0")
    head = asyncio.create_task(limiter.call(calls.work, "head"))
    await clock.settle()
    behind = asyncio.create_task(limiter.call(calls.work, "behind"))
    await clock.settle()
    await limiter.drain(retry_after=0.35)  # head can still make it at 0.45, behind cannot
    behind.cancel()
    with pytest.raises(asyncio.CancelledError):
        await behind
    await clock.advance(1.0)
    assert await clock.run(head) == "head"
    assert calls.ran == [("w0", 0.0), ("head", 0.45)]
    assert limiter.waiting == 0


async def test_many_cancelled_waiters_do_not_pile_up(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=1, max_wait=math.inf, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "w0")
    tasks = [asyncio.create_task(limiter.call(calls.work, f"w{i}")) for i in range(1, 101)]
    await clock.settle()
    for task in tasks[1:-1]:
        task.cancel()
    await clock.settle()
    assert limiter.waiting == 2
    await clock.advance(1.0)
    assert calls.ran == [("w0", 0.0), ("w1", 0.1), ("w100", 0.2)]


async def test_an_upstream_429_drains_the_bucket_when_asked_to(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, initial_tokens=10, drain_on=Upstream429, clock=clock)

    async def limited(retry_after: object) -> None:
        raise Upstream429(retry_after)

    with pytest.raises(Upstream429):
        await limiter.call(limited, 3)
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(limiter.call(limited, None))
    assert caught.value.retry_after == pytest.approx(3.1)

    await clock.advance(3.1)
    for unusable in (None, "soon", math.inf, True):
        with pytest.raises(Upstream429):
            await limiter.call(limited, unusable)
        await clock.advance(0.1)  # no hold: one refill later a token is back

    async def other() -> None:
        raise KeyError("not a rate limit")

    with pytest.raises(KeyError):
        await limiter.call(other)
    # consumed, but not drained: KeyError is not a 429
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    await clock.advance(0.1)
    assert limiter.available == pytest.approx(1.0)


async def test_without_drain_on_errors_pass_through_untouched(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, initial_tokens=10, clock=clock)

    async def limited() -> None:
        raise Upstream429(5)

    with pytest.raises(Upstream429):
        await limiter.call(limited)
    assert limiter.available == 9.0


async def test_a_running_deadline_shortens_the_wait(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, max_wait=5.0, clock=clock)
    calls = Recorder(clock)
    await limiter.call(calls.work, "w0")
    waiting = [asyncio.create_task(limiter.call(calls.work, f"w{i}")) for i in (1, 2)]
    await clock.settle()
    deadline = Deadline(0.25, clock=clock)
    with pytest.raises(RateLimitedError) as caught:
        await clock.run(deadline.call(limiter.call, calls.work, "w3"))
    assert caught.value.retry_after == pytest.approx(0.3)
    assert "within 0.250s" in str(caught.value)
    await clock.advance(1.0)
    await clock.run(asyncio.gather(*waiting))


async def test_limiters_sharing_a_store_share_its_tokens(clock: FakeClock) -> None:
    store = MemoryTokenBucketStore()
    one = RateLimiter(rate=1.0, burst=2, initial_tokens=2, store=store, clock=clock)
    two = RateLimiter(rate=1.0, burst=2, initial_tokens=2, store=store, clock=clock)
    calls = Recorder(clock)
    await one.call(calls.work, "a")
    await two.call(calls.work, "b")
    with pytest.raises(RateLimitedError):
        await clock.run(one.call(calls.work, "c"))
    assert "tokens=0.000" in repr(store)


async def test_the_memory_store_answers_the_protocol_questions(clock: FakeClock) -> None:
    store = MemoryTokenBucketStore()
    spec = TokenBucketSpec(rate=2.0, burst=4.0, initial=1.0)
    assert store.available(spec, 0.0) == 1.0
    assert await store.wait_time(spec, 0.0, 1) == 0.0
    assert await store.take(spec, 0.0) == 0.0
    assert await store.take(spec, 0.0) == pytest.approx(0.5)
    assert await store.wait_time(spec, 0.0, 3) == pytest.approx(1.5)
    await store.drain(spec, 0.25, 1.0)
    assert store.available(spec, 0.5) == 0.0
    assert await store.wait_time(spec, 0.5, 1) == pytest.approx(1.25)
    assert await store.take(spec, 10.0) == 0.0
    assert store.available(spec, 10.0) == 3.0


async def test_it_emits_queued_rejected_and_drained_events(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, max_wait=0.1, name="api", clock=clock)
    seen: list[ResilienceEvent] = []
    limiter.events.subscribe(seen.append)
    calls = Recorder(clock)
    await limiter.call(calls.work, "a")
    queued = asyncio.create_task(limiter.call(calls.work, "b"))
    await clock.settle()
    with pytest.raises(RateLimitedError):
        await clock.run(limiter.call(calls.work, "c"))
    await clock.advance(0.1)
    await clock.run(queued)
    await limiter.drain(1.0)
    assert [(e.kind, e.policy, dict(e.attributes)) for e in seen] == [
        ("rate_limiter.queued", "api", {"wait": pytest.approx(0.1)}),
        ("rate_limiter.rejected", "api", {"wait": pytest.approx(0.2), "max_wait": 0.1}),
        ("rate_limiter.drained", "api", {"hold": 1.0}),
    ]


async def test_it_works_as_a_decorator_and_has_a_readable_repr(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=5, clock=clock)

    @limiter
    async def double(x: int) -> int:
        return 2 * x

    assert await double(4) == 8
    assert repr(limiter) == "RateLimiter(rate=5.0, burst=5.0, max_wait=0.0, name='rate_limiter')"


def test_defaults_are_ten_per_second_one_second_of_burst_and_no_waiting() -> None:
    limiter = RateLimiter()
    assert (limiter.rate, limiter.burst, limiter.max_wait) == (10.0, 10.0, 0.0)
    assert limiter.available == 1.0
    assert RateLimiter(rate=0.5).burst == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a finite number of tokens per second > 0, got 0"),
        ({"rate": -1.0}, "rate must be a finite number of tokens per second > 0"),
        ({"rate": math.inf}, "rate must be a finite number"),
        ({"rate": math.nan}, "rate must be a finite number"),
        ({"rate": "10/s"}, "rate must be a finite number"),
        ({"rate": True}, "rate must be a finite number"),
        ({"burst": 0.5}, "burst must be a finite number of tokens >= 1, got 0.5"),
        ({"burst": math.inf}, "burst must be a finite number of tokens >= 1"),
        ({"burst": False}, "burst must be a finite number of tokens >= 1"),
        ({"initial_tokens": -1}, "initial_tokens must be a number of tokens in [0, 10], got -1"),
        ({"initial_tokens": 11}, "initial_tokens must be a number of tokens in [0, 10]"),
        ({"initial_tokens": math.nan}, "initial_tokens must be a number of tokens in [0, 10]"),
        ({"initial_tokens": True}, "initial_tokens must be a number of tokens in [0, 10]"),
        ({"max_wait": -1}, "max_wait must be a number of seconds >= 0 (math.inf for no limit)"),
        ({"max_wait": math.nan}, "max_wait must be a number of seconds >= 0"),
        ({"drain_on": 429}, "drain_on must be an exception type, a tuple of them or a predicate"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RateLimiter(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert str(caught.value).startswith("RateLimiter ")


@pytest.mark.parametrize("retry_after", [-1.0, math.inf, math.nan])
async def test_drain_refuses_a_nonsense_hold(clock: FakeClock, retry_after: float) -> None:
    limiter = RateLimiter(clock=clock)
    with pytest.raises(
        ConfigError, match=r"RateLimiter\.drain retry_after must be a finite number of seconds >= 0"
    ):
        await limiter.drain(retry_after)
