"""Timeout and Deadline: behaviour 23 and the timeout part of behaviour 15 (resilience.md (d))."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from interlink.core.clock import MonotonicClock
from interlink.core.errors import AttemptTimeoutError, ConfigError, DeadlineExceededError
from interlink.resilience import (
    Deadline,
    ResilienceEvent,
    Timeout,
    current_deadline,
    deadline_remaining,
)
from interlink.testing import FakeClock


class CapturingClock(FakeClock):
    """A FakeClock that also hands the test every timer callback, to fire it by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Callable[[], object]] = []

    def call_later(self, delay: float, callback: Callable[[], object]):  # type: ignore[no-untyped-def]
        self.callbacks.append(callback)
        return super().call_later(delay, callback)


# -- Timeout -----------------------------------------------------------------


async def test_timeout_cancels_the_attempt_at_exactly_the_limit(clock: FakeClock) -> None:
    timeout = Timeout(1.5, clock=clock)
    seen: list[str] = []

    async def slow() -> str:
        try:
            await clock.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")
        return "late"

    with pytest.raises(AttemptTimeoutError) as caught:
        await clock.run(timeout.call(slow))
    assert clock.monotonic() == 1001.5
    assert seen == ["cancelled", "finally"]
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.policy == "timeout"
    assert "1.500s" in str(caught.value)
    assert clock.pending == 0


async def test_a_call_within_the_limit_returns_its_value_and_leaves_no_timer(
    clock: FakeClock,
) -> None:
    timeout = Timeout(2.0, clock=clock)

    async def work(x: int, *, y: int) -> int:
        await clock.sleep(1.999)
        return x + y

    assert await clock.run(timeout.call(work, 1, y=2)) == 3
    assert clock.pending == 0


async def test_timeout_runs_on_the_real_clock_by_default() -> None:
    timeout = Timeout()

    async def quick() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert timeout.clock.monotonic() > 0
    assert await timeout.call(quick) == "ok"


async def test_the_callees_own_timeout_error_is_not_mistaken_for_ours(clock: FakeClock) -> None:
    timeout = Timeout(5.0, clock=clock)
    own = TimeoutError("upstream said 504")

    async def gives_up() -> None:
        await clock.sleep(1)
        raise own

    with pytest.raises(TimeoutError) as caught:
        await clock.run(timeout.call(gives_up))
    assert caught.value is own
    assert not isinstance(caught.value, AttemptTimeoutError)


async def test_an_outside_cancellation_stays_a_cancellation(clock: FakeClock) -> None:
    timeout = Timeout(5.0, clock=clock)

    async def slow() -> None:
        await clock.sleep(60)

    task = asyncio.create_task(timeout.call(slow))
    await clock.advance(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0


async def test_an_outside_cancellation_arriving_with_the_timeout_wins() -> None:
    clock = CapturingClock()
    timeout = Timeout(5.0, clock=clock)

    async def slow() -> None:
        await clock.sleep(60)

    task = asyncio.create_task(timeout.call(slow))
    await clock.settle()
    expire = clock.callbacks[0]  # the timeout's timer; the sleep's comes second
    expire()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_callee_that_swallows_the_cancellation_still_times_out(clock: FakeClock) -> None:
    timeout = Timeout(1.0, clock=clock)

    async def stubborn() -> str:
        try:
            await clock.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # some clean-up first (also keeps coverage tracing on 3.11)
            return "success after timeout"
        return "never"

    with pytest.raises(AttemptTimeoutError):
        await clock.run(timeout.call(stubborn))
    assert clock.monotonic() == 1001.0


async def test_an_error_raised_while_cancelled_by_the_timeout_is_reported_as_the_timeout(
    clock: FakeClock,
) -> None:
    timeout = Timeout(1.0, clock=clock)

    async def messy() -> None:
        try:
            await clock.sleep(60)
        finally:
            raise ConnectionResetError("closing the socket failed")

    with pytest.raises(AttemptTimeoutError) as caught:
        await clock.run(timeout.call(messy))
    assert isinstance(caught.value.__cause__, ConnectionResetError)


async def test_timeout_emits_timed_out_with_the_limit_it_applied(clock: FakeClock) -> None:
    timeout = Timeout(0.25, clock=clock, name="payments.timeout")
    seen: list[ResilienceEvent] = []
    timeout.events.subscribe(seen.append)

    async def slow() -> None:
        await clock.sleep(1)

    with pytest.raises(AttemptTimeoutError):
        await clock.run(timeout.call(slow))
    assert seen == [
        ResilienceEvent(
            "timeout.timed_out", "payments.timeout", 1000.25, {"seconds": 0.25, "deadline": False}
        )
    ]


async def test_timeout_decorates_a_coroutine_function(clock: FakeClock) -> None:
    @Timeout(1.0, clock=clock)
    async def fetch(order_id: str) -> str:
        await clock.sleep(2)
        return order_id

    with pytest.raises(AttemptTimeoutError):
        await clock.run(fetch("42"))


# -- Deadline ----------------------------------------------------------------


async def test_deadline_cancels_the_work_and_raises_deadline_exceeded(clock: FakeClock) -> None:
    deadline = Deadline(2.0, clock=clock, name="checkout")
    seen: list[str] = []

    async def slow() -> None:
        try:
            await clock.sleep(60)
        finally:
            seen.append("finally")

    with pytest.raises(DeadlineExceededError) as caught:
        await clock.run(deadline.call(slow))
    assert clock.monotonic() == 1002.0
    assert seen == ["finally"]
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.policy == "checkout"
    assert current_deadline() is None


async def test_deadline_sets_the_time_left_for_the_code_inside(clock: FakeClock) -> None:
    deadline = Deadline(3.0, clock=clock)
    seen: list[float | None] = []

    async def work() -> str:
        seen.append(deadline_remaining(clock))
        await clock.sleep(1)
        seen.append(deadline_remaining(clock))
        return "done"

    assert deadline_remaining(clock) is None
    assert await clock.run(deadline.call(work)) == "done"
    assert seen == [3.0, 2.0]
    assert current_deadline() is None
    assert clock.pending == 0


async def test_a_nested_deadline_can_shorten_but_never_extend(clock: FakeClock) -> None:
    outer, longer, shorter = (
        Deadline(5.0, clock=clock, name="outer"),
        Deadline(10.0, clock=clock, name="longer"),
        Deadline(1.0, clock=clock, name="shorter"),
    )
    seen: list[float | None] = []

    async def note() -> None:
        seen.append(current_deadline())

    async def body() -> None:
        await longer.call(note)
        await shorter.call(note)
        await note()
        await longer.call(clock.sleep, 60)

    with pytest.raises(DeadlineExceededError) as caught:
        await clock.run(outer.call(body))
    assert seen == [1005.0, 1001.0, 1005.0]
    assert caught.value.policy == "outer"
    assert clock.monotonic() == 1005.0


async def test_an_inner_deadline_that_expires_first_reports_itself(clock: FakeClock) -> None:
    outer, inner = Deadline(5.0, clock=clock), Deadline(1.0, clock=clock, name="inner")

    with pytest.raises(DeadlineExceededError) as caught:
        await clock.run(outer.call(inner.call, clock.sleep, 60))
    assert caught.value.policy == "inner"
    assert clock.monotonic() == 1001.0


async def test_deadline_passes_the_callees_own_timeout_error_through(clock: FakeClock) -> None:
    deadline = Deadline(5.0, clock=clock)
    own = TimeoutError("socket read")

    async def fails() -> None:
        raise own

    with pytest.raises(TimeoutError) as caught:
        await clock.run(deadline.call(fails))
    assert caught.value is own


async def test_a_callee_swallowing_the_deadline_still_exceeds_it(clock: FakeClock) -> None:
    deadline = Deadline(1.0, clock=clock)
    seen: list[ResilienceEvent] = []
    deadline.events.subscribe(seen.append)

    async def stubborn() -> str:
        try:
            await clock.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return "too late"
        return "never"

    with pytest.raises(DeadlineExceededError):
        await clock.run(deadline.call(stubborn))
    assert [e.kind for e in seen] == ["deadline.exceeded"]


async def test_an_outside_cancellation_of_a_deadline_stays_a_cancellation(
    clock: FakeClock,
) -> None:
    deadline = Deadline(5.0, clock=clock)
    task = asyncio.create_task(deadline.call(clock.sleep, 60))
    await clock.advance(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0


# -- Timeout inside a Deadline (behaviour 15) --------------------------------


async def test_a_timeout_inside_a_deadline_gets_the_time_left(clock: FakeClock) -> None:
    deadline, timeout = Deadline(2.0, clock=clock), Timeout(10.0, clock=clock)

    async def body() -> None:
        await clock.sleep(1.5)
        await timeout.call(clock.sleep, 60)

    with pytest.raises(DeadlineExceededError):
        await clock.run(deadline.call(body))
    assert clock.monotonic() == 1002.0


async def test_a_timeout_tighter_than_the_deadline_raises_attempt_timeout(
    clock: FakeClock,
) -> None:
    deadline, timeout = Deadline(10.0, clock=clock), Timeout(1.0, clock=clock)

    with pytest.raises(AttemptTimeoutError):
        await clock.run(deadline.call(timeout.call, clock.sleep, 60))
    assert clock.monotonic() == 1001.0


async def test_a_task_spawned_under_a_deadline_is_bound_by_it_through_its_timeout(
    clock: FakeClock,
) -> None:
    deadline, timeout = Deadline(2.0, clock=clock), Timeout(10.0, clock=clock, name="attempt")
    seen: list[ResilienceEvent] = []
    timeout.events.subscribe(seen.append)

    async def spawn() -> asyncio.Task[None]:
        # create_task copies the context, deadline included; the Deadline's own
        # timer belongs to this call and is gone once it returns.
        return asyncio.create_task(timeout.call(clock.sleep, 60))

    task = await deadline.call(spawn)
    with pytest.raises(DeadlineExceededError) as caught:
        await clock.run(task)
    assert clock.monotonic() == 1002.0
    assert caught.value.policy == "attempt"
    assert seen[0].attributes == {"seconds": 2.0, "deadline": True}


async def test_no_attempt_starts_when_no_time_is_left(clock: FakeClock) -> None:
    deadline, timeout = Deadline(1.0, clock=clock), Timeout(10.0, clock=clock)
    calls: list[str] = []

    async def attempt() -> None:
        calls.append("attempt")

    async def late() -> None:
        await clock.sleep(1.0)
        await timeout.call(attempt)

    async def spawn() -> asyncio.Task[None]:
        return asyncio.create_task(late())

    task = await deadline.call(spawn)
    with pytest.raises(DeadlineExceededError, match="before the attempt could start"):
        await clock.run(task)
    assert calls == []


# -- configuration -----------------------------------------------------------


@pytest.mark.parametrize("policy", [Timeout, Deadline])
@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "> 0"),
        (-1.0, "> 0"),
        (math.nan, "> 0"),
        (math.inf, "finite"),
        ("5s", "number of seconds"),
        (True, "number of seconds"),
        (None, "number of seconds"),
    ],
)
def test_bad_seconds_are_a_config_error_naming_the_argument(
    policy: type[Timeout | Deadline], seconds: object, expected: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{policy.__name__} seconds.*{expected}"):
        policy(seconds)  # type: ignore[arg-type]


def test_defaults_follow_the_anchors_and_show_in_repr() -> None:
    assert Timeout().seconds == 10.0
    assert Deadline().seconds == 30.0
    assert repr(Timeout(2)) == "Timeout(2.0, name='timeout')"
    assert repr(Deadline(3, name="op")) == "Deadline(3.0, name='op')"


# -- many scopes behind one timer --------------------------------------------


class ArmedClock(FakeClock, MonotonicClock):
    """A FakeClock that the timeouts treat like the real clock (timer kept armed when idle)."""


async def test_concurrent_attempts_each_time_out_at_their_own_limit(clock: FakeClock) -> None:
    timeout = Timeout(1.0, clock=clock)
    ended: dict[str, float] = {}

    async def attempt(label: str, start: float, seconds: float) -> None:
        await clock.sleep(start)
        try:
            await timeout.call(clock.sleep, seconds)
        except AttemptTimeoutError:
            ended[label] = clock.monotonic()
        else:
            ended[label] = -clock.monotonic()

    # b ends early while a, expiring first, is still running; c outlives both.
    await clock.run(
        asyncio.gather(attempt("a", 0.0, 60), attempt("b", 0.5, 0.2), attempt("c", 0.8, 60))
    )
    assert ended == {"a": 1001.0, "b": -1000.7, "c": 1001.8}
    assert clock.pending == 0


async def test_a_shorter_limit_arriving_later_still_fires_first(clock: FakeClock) -> None:
    timeout = Timeout(10.0, clock=clock)
    ended: list[tuple[str, float]] = []

    async def long() -> None:
        with pytest.raises(AttemptTimeoutError):
            await timeout.call(clock.sleep, 60)
        ended.append(("long", clock.monotonic()))

    async def bounded() -> None:
        await clock.sleep(0.5)
        with pytest.raises(DeadlineExceededError):
            await Deadline(1.0, clock=clock).call(timeout.call, clock.sleep, 60)
        ended.append(("bounded", clock.monotonic()))

    await clock.run(asyncio.gather(long(), bounded()))
    assert ended == [("bounded", 1001.5), ("long", 1010.0)]


async def test_many_short_attempts_beside_a_long_one_keep_their_limits(clock: FakeClock) -> None:
    timeout = Timeout(5.0, clock=clock)
    long = asyncio.create_task(timeout.call(clock.sleep, 60))
    await clock.settle()
    for _ in range(300):  # each leaves a finished slot behind the long one's
        await clock.run(timeout.call(clock.sleep, 0.01))
    assert clock.monotonic() == pytest.approx(1003.0)
    with pytest.raises(AttemptTimeoutError):
        await clock.run(long)
    assert clock.monotonic() == 1005.0
    assert clock.pending == 0


async def test_on_the_real_clock_the_timer_stays_armed_between_calls() -> None:
    clock = ArmedClock()
    timeout = Timeout(1.0, clock=clock)

    async def quick() -> str:
        return "ok"

    assert await timeout.call(quick) == "ok"
    assert clock.pending == 1  # kept for the next call instead of re-armed per call
    assert await timeout.call(quick) == "ok"
    assert clock.pending == 1
    await clock.advance(0.5)
    task = asyncio.create_task(timeout.call(clock.sleep, 60))
    await clock.advance(0.5)  # the idle timer fires, finds nothing due, re-arms for the task
    assert not task.done()
    with pytest.raises(AttemptTimeoutError):
        await clock.run(task)
    assert clock.monotonic() == 1001.5


async def test_the_same_deadline_can_run_again(clock: FakeClock) -> None:
    deadline = Deadline(1.0, clock=clock)
    await clock.run(deadline.call(clock.sleep, 0.5))
    assert clock.monotonic() == 1000.5
    with pytest.raises(DeadlineExceededError):
        await clock.run(deadline.call(clock.sleep, 5))
    assert clock.monotonic() == 1001.5


def test_a_timeout_shared_by_two_event_loops_works_in_each() -> None:
    clock = FakeClock()
    timeout = Timeout(1.0, clock=clock)

    async def scenario() -> float:
        with pytest.raises(AttemptTimeoutError):
            await clock.run(timeout.call(clock.sleep, 60))
        return clock.monotonic()

    assert asyncio.run(scenario()) == 1001.0
    assert asyncio.run(scenario()) == 1002.0
