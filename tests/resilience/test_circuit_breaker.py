"""CircuitBreaker: behaviours 1-11 of resilience.md (d), on the FakeClock.

Each section names the behaviour it covers; sync callers from threads (part
of 11) and shared Redis state (12) are out of scope here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from random import Random
from typing import Any

import pytest

from interlink.core.errors import (
    AttemptTimeoutError,
    CircuitForcedOpenError,
    CircuitOpenError,
    ConfigError,
)
from interlink.resilience import (
    CircuitBreaker,
    CircuitMetrics,
    CircuitState,
    MemoryBreakerStore,
    ResilienceEvent,
    Timeout,
)
from interlink.resilience._breaker_state import TimeWindow
from interlink.testing import FakeClock


class Boom(Exception):
    """An upstream failure."""


class Ignored(Exception):
    """An error the breaker is told to ignore."""


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom


def make(clock: FakeClock, **overrides: Any) -> CircuitBreaker:
    """A small breaker: 10-call window, opens at 50% of 10 calls for 5 s, 3 probes."""
    settings: dict[str, Any] = {
        "window": 10,
        "min_calls": 10,
        "open_for": 5.0,
        "half_open_calls": 3,
        "max_wait_in_half_open": 30.0,
        "slow_call_duration": 1.0,
        "ignore_on": Ignored,
        "random": Random(7),
        "clock": clock,
        "name": "svc",
    }
    settings.update(overrides)
    return CircuitBreaker(**settings)


def record(breaker: CircuitBreaker) -> list[ResilienceEvent]:
    seen: list[ResilienceEvent] = []
    breaker.events.subscribe(seen.append)
    return seen


def transitions(events: list[ResilienceEvent]) -> list[tuple[str, str, str]]:
    return [
        (e.attributes["from"], e.attributes["to"], e.attributes["reason"])
        for e in events
        if e.kind == "circuit_breaker.transition"
    ]


async def run(breaker: CircuitBreaker, fn: Callable[[], Awaitable[str]], times: int = 1) -> None:
    """Call ``fn`` through the breaker ``times`` times, swallowing the callee's errors."""
    for _ in range(times):
        with contextlib.suppress(Boom, Ignored):
            await breaker.call(fn)


async def open_breaker(breaker: CircuitBreaker) -> None:
    await run(breaker, fail, 10)
    assert breaker.state is CircuitState.OPEN


def sleeper(
    clock: FakeClock, seconds: float, *, outcome: str = "ok"
) -> Callable[[], Awaitable[str]]:
    async def work() -> str:
        await clock.sleep(seconds)
        if outcome == "fail":
            raise Boom
        if outcome == "ignored":
            raise Ignored
        return "ok"

    return work


async def half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    await open_breaker(breaker)
    await clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN


# -- 1. half-open admits exactly N concurrently -------------------------------


async def test_half_open_admits_exactly_n_probes(clock: FakeClock) -> None:
    breaker = make(clock)
    await half_open(breaker, clock)
    running = 0
    peak = 0

    async def probe() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await clock.sleep(1.0)
        running -= 1
        return "ok"

    tasks = [asyncio.ensure_future(breaker.call(probe)) for _ in range(50)]
    await clock.settle()
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 47  # answered at once, before any probe finished
    for task in rejected:
        error = task.exception()
        assert isinstance(error, CircuitOpenError)
        assert error.retry_after is not None
        assert error.retry_after > 0
        assert error.policy == "svc"
    assert running == 3
    await clock.advance(1.0)
    assert [t.result() for t in tasks if t not in rejected] == ["ok"] * 3
    assert peak == 3
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().not_permitted_calls == 47


async def test_half_open_decides_only_when_every_probe_finished(clock: FakeClock) -> None:
    breaker = make(clock)
    await half_open(breaker, clock)
    tasks = [
        asyncio.ensure_future(breaker.call(sleeper(clock, d, outcome="fail")))
        for d in (1.0, 2.0, 3.0)
    ]
    await clock.advance(2.0)
    assert breaker.state is CircuitState.HALF_OPEN  # two of three failed: no verdict yet
    await clock.advance(1.0)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["ok", "ok", "fail"], CircuitState.CLOSED),  # 33% < 50%
        (["ok", "fail", "fail"], CircuitState.OPEN),  # 67% >= 50%
    ],
)
async def test_probe_failure_rate_closes_or_reopens(
    clock: FakeClock, outcomes: list[str], expected: CircuitState
) -> None:
    breaker = make(clock)
    events = record(breaker)
    await half_open(breaker, clock)
    for outcome in outcomes:
        await run(breaker, sleeper(clock, 0.0, outcome=outcome))
    assert breaker.state is expected
    last = transitions(events)[-1]
    assert last == (
        "half_open",
        expected.value,
        "probes_failed" if expected is CircuitState.OPEN else "probes_succeeded",
    )


async def test_probe_failure_rate_at_the_threshold_reopens(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=2)
    await half_open(breaker, clock)
    await run(breaker, ok)
    await run(breaker, fail)
    assert breaker.state is CircuitState.OPEN  # 1 of 2 = 50% >= 50%


async def test_slow_probes_reopen_the_breaker(clock: FakeClock) -> None:
    breaker = make(clock, slow_call_rate=50.0, half_open_calls=2)
    events = record(breaker)
    await half_open(breaker, clock)
    await clock.run(breaker.call(sleeper(clock, 1.5)))
    await clock.run(breaker.call(sleeper(clock, 0.5)))
    assert breaker.state is CircuitState.OPEN
    assert transitions(events)[-1] == ("half_open", "open", "probes_slow")


# -- 2. half-open permits never leak ---------------------------------------------


async def test_cancelled_probe_gives_its_permit_back(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    await half_open(breaker, clock)
    probe = asyncio.ensure_future(breaker.call(sleeper(clock, 10.0)))
    await clock.settle()
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)  # the only permit is taken
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    assert breaker.state is CircuitState.HALF_OPEN  # cancellation is no success (unlike Polly)
    assert breaker.metrics().buffered_calls == 0  # ... and no failure either
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_probe_cancelled_by_an_outer_timeout_gives_its_permit_back(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    timeout = Timeout(0.5, clock=clock)
    await half_open(breaker, clock)
    with pytest.raises(AttemptTimeoutError):
        await clock.run(timeout.call(breaker.call, sleeper(clock, 10.0)))
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_probe_timing_out_inside_the_breaker_counts_as_a_failure(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    timeout = Timeout(0.5, clock=clock)
    await half_open(breaker, clock)
    with pytest.raises(AttemptTimeoutError):
        await clock.run(breaker.call(timeout.call, sleeper(clock, 10.0)))
    assert breaker.state is CircuitState.OPEN


async def test_ignored_error_in_a_probe_gives_its_permit_back(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    await half_open(breaker, clock)
    for _ in range(5):
        with pytest.raises(Ignored):
            await breaker.call(sleeper(clock, 0.0, outcome="ignored"))
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics().buffered_calls == 0
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_probe_permit_comes_back_when_record_result_raises(clock: FakeClock) -> None:
    def broken(result: object) -> bool:
        raise ValueError("predicate bug")

    breaker = make(clock, half_open_calls=1, record_result=broken)
    await half_open(breaker, clock)
    with pytest.raises(ValueError, match="predicate bug"):
        await breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN
    assert isinstance(breaker.store, MemoryBreakerStore)
    assert breaker.store.probes_granted == 0


async def test_probe_permit_comes_back_when_ignore_on_raises(clock: FakeClock) -> None:
    def broken(exc: BaseException) -> bool:
        raise ValueError("predicate bug")

    breaker = make(clock, half_open_calls=1)
    await half_open(breaker, clock)
    breaker_with_bug = make(clock, half_open_calls=1, ignore_on=broken, store=breaker.store)
    with pytest.raises(ValueError, match="predicate bug"):
        await breaker_with_bug.call(fail)
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_hung_probe_sends_half_open_back_to_open_after_max_wait(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    events = record(breaker)
    await half_open(breaker, clock)
    hung = asyncio.ensure_future(breaker.call(sleeper(clock, 1000.0)))
    await clock.advance(29.999)
    assert breaker.state is CircuitState.HALF_OPEN
    await clock.advance(0.001)
    assert breaker.state is CircuitState.OPEN  # applied lazily, on read
    assert transitions(events)[-1] == ("half_open", "open", "half_open_timeout")
    await clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN  # a new half-open with a free permit
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    hung.cancel()
    await asyncio.gather(hung, return_exceptions=True)


async def test_cancelled_calls_count_as_neither_success_nor_failure(clock: FakeClock) -> None:
    breaker = make(clock)
    tasks = [asyncio.ensure_future(breaker.call(sleeper(clock, 10.0))) for _ in range(20)]
    await clock.settle()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert breaker.metrics().buffered_calls == 0


# -- 3. stale outcomes are ignored -----------------------------------------------


async def test_stale_failure_moves_nothing_and_takes_no_probe(clock: FakeClock) -> None:
    breaker = make(clock)
    stale = asyncio.ensure_future(breaker.call(sleeper(clock, 6.0, outcome="fail")))
    await clock.settle()
    await open_breaker(breaker)
    await clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN
    await clock.advance(1.0)
    with pytest.raises(Boom):
        await stale
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics().failed_calls == 1  # the metrics saw it
    for _ in range(3):
        assert await breaker.call(ok) == "ok"  # all three probes still free
    assert breaker.state is CircuitState.CLOSED


async def test_stale_success_does_not_close_half_open(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    stale = asyncio.ensure_future(breaker.call(sleeper(clock, 6.0)))
    await clock.settle()
    await half_open(breaker, clock)
    await clock.advance(1.0)
    assert await stale == "ok"
    assert breaker.state is CircuitState.HALF_OPEN
    await run(breaker, fail)  # the one real probe decides
    assert breaker.state is CircuitState.OPEN


async def test_stale_probe_outcome_after_half_open_timeout_changes_nothing(
    clock: FakeClock,
) -> None:
    breaker = make(clock, half_open_calls=1, max_wait_in_half_open=2.0)
    await half_open(breaker, clock)
    probe = asyncio.ensure_future(breaker.call(sleeper(clock, 3.0)))
    await clock.advance(2.0)
    assert breaker.state is CircuitState.OPEN
    await clock.advance(1.0)
    assert await probe == "ok"
    assert breaker.state is CircuitState.OPEN


async def test_stale_failures_cannot_open_a_reset_breaker(clock: FakeClock) -> None:
    breaker = make(clock)
    calls = [
        asyncio.ensure_future(breaker.call(sleeper(clock, 1.0, outcome="fail"))) for _ in range(10)
    ]
    await clock.settle()
    breaker.reset()
    await clock.advance(1.0)
    await asyncio.gather(*calls, return_exceptions=True)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().failed_calls == 10
    await run(breaker, ok)  # the next fresh outcome applies the thresholds again
    assert breaker.state is CircuitState.OPEN


# -- 4. threshold edges ----------------------------------------------------------


async def test_nine_failures_out_of_nine_stay_closed_below_min_calls(clock: FakeClock) -> None:
    breaker = make(clock)
    await run(breaker, fail, 9)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().failure_rate == 100.0


async def test_five_failures_out_of_ten_open_the_breaker(clock: FakeClock) -> None:
    breaker = make(clock)
    await run(breaker, ok, 5)
    await run(breaker, fail, 5)
    assert breaker.state is CircuitState.OPEN


async def test_four_failures_out_of_ten_stay_closed(clock: FakeClock) -> None:
    breaker = make(clock)
    await run(breaker, ok, 6)
    await run(breaker, fail, 4)
    assert breaker.state is CircuitState.CLOSED


async def test_a_success_that_fills_min_calls_can_open_the_breaker(clock: FakeClock) -> None:
    breaker = make(clock)
    await run(breaker, fail, 5)
    await run(breaker, ok, 5)
    assert breaker.state is CircuitState.OPEN  # checked on every outcome, not only failures


async def test_min_calls_is_clamped_to_a_count_window(clock: FakeClock) -> None:
    breaker = make(clock, window=5, min_calls=100)
    await run(breaker, fail, 5)
    assert breaker.state is CircuitState.OPEN


async def test_min_calls_is_not_clamped_for_a_time_window(clock: FakeClock) -> None:
    breaker = make(clock, window_type="time", window=5, min_calls=20)
    await run(breaker, fail, 19)
    assert breaker.state is CircuitState.CLOSED
    await run(breaker, fail)
    assert breaker.state is CircuitState.OPEN


async def test_count_window_holds_only_the_last_n_outcomes(clock: FakeClock) -> None:
    breaker = make(clock, window=4, min_calls=4)
    await run(breaker, ok, 3)
    await run(breaker, fail)
    assert breaker.metrics().failure_rate == 25.0
    await run(breaker, fail)  # the oldest success falls out: 2 of 4
    assert breaker.state is CircuitState.OPEN


async def test_the_transition_event_tells_why_it_opened(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    await run(breaker, ok, 5)
    await run(breaker, fail, 5)
    (opened,) = [e for e in events if e.kind == "circuit_breaker.transition"]
    assert opened.policy == "svc"
    assert opened.attributes == {
        "from": "closed",
        "to": "open",
        "reason": "failure_rate",
        "failure_rate": 50.0,
        "slow_call_rate": 0.0,
        "buffered_calls": 10,
        "open_for": 5.0,
    }


# -- 5. slow calls ---------------------------------------------------------------


async def test_slow_successes_open_the_breaker_without_any_error(clock: FakeClock) -> None:
    breaker = make(clock, window=4, min_calls=4, slow_call_rate=50.0)
    events = record(breaker)
    for duration in (0.5, 1.5, 0.5, 1.5):
        await clock.run(breaker.call(sleeper(clock, duration)))
    assert breaker.state is CircuitState.OPEN
    assert transitions(events) == [("closed", "open", "slow_call_rate")]
    assert breaker.metrics().failed_calls == 0


async def test_a_call_lasting_exactly_the_threshold_is_not_slow(clock: FakeClock) -> None:
    breaker = make(clock, window=1, min_calls=1, slow_call_rate=100.0)
    await clock.run(breaker.call(sleeper(clock, 1.0)))
    assert breaker.metrics().slow_calls == 0
    assert breaker.state is CircuitState.CLOSED
    await clock.run(breaker.call(sleeper(clock, 1.0001)))
    assert breaker.state is CircuitState.OPEN


async def test_slow_failures_count_as_failed_and_slow(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate=100.0, slow_call_rate=100.0)
    with pytest.raises(Boom):
        await clock.run(breaker.call(sleeper(clock, 2.0, outcome="fail")))
    snapshot = breaker.metrics()
    assert (snapshot.failed_calls, snapshot.slow_calls, snapshot.buffered_calls) == (1, 1, 1)


# -- 6. a time window ages out without traffic -----------------------------------


async def test_time_window_ages_out_without_traffic(clock: FakeClock) -> None:
    breaker = make(clock, window_type="time", window=10, min_calls=11)
    await run(breaker, fail, 10)
    assert breaker.metrics().failed_calls == 10
    await clock.advance(11.0)
    assert breaker.metrics().buffered_calls == 0  # evicted on read
    await run(breaker, ok)
    snapshot = breaker.metrics()
    assert (snapshot.buffered_calls, snapshot.failure_rate) == (1, 0.0)


async def test_time_window_counts_calls_across_its_seconds(clock: FakeClock) -> None:
    breaker = make(clock, window_type="time", window=10, min_calls=10, failure_rate=100.0)
    for _ in range(9):
        await run(breaker, fail)
        await clock.advance(1.0)
    assert breaker.state is CircuitState.CLOSED
    await run(breaker, fail)  # ten failures within the last ten seconds
    assert breaker.state is CircuitState.OPEN


async def test_time_window_drops_only_seconds_that_fell_out(clock: FakeClock) -> None:
    breaker = make(clock, window_type="time", window=3, min_calls=100)
    await run(breaker, fail, 2)
    await clock.advance(1.0)
    await run(breaker, ok, 3)
    await clock.advance(2.0)  # the failures' second leaves, the successes' stays
    snapshot = breaker.metrics()
    assert (snapshot.buffered_calls, snapshot.failed_calls) == (3, 0)


def test_time_window_tolerates_a_clock_that_steps_back() -> None:
    window = TimeWindow(5)
    window.record(True, False, 100.5)
    window.record(False, True, 99.5)
    assert (window.total, window.failed, window.slow) == (2, 1, 1)
    window.expire(104.0)  # second 99 leaves the window [100, 104]
    assert (window.total, window.failed, window.slow) == (1, 1, 0)


# -- 7. ignored exceptions are neutral -------------------------------------------


async def test_ignored_exceptions_are_not_buffered(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    await run(breaker, sleeper(clock, 0.0, outcome="ignored"), 20)
    assert breaker.metrics().buffered_calls == 0
    assert [e.kind for e in events] == ["circuit_breaker.ignored"] * 20


async def test_ignored_exceptions_do_not_break_a_run_of_failures(clock: FakeClock) -> None:
    breaker = make(clock, window=3, min_calls=3, failure_rate=100.0)
    for outcome in ("fail", "ignored", "fail", "ignored", "fail"):
        await run(breaker, sleeper(clock, 0.0, outcome=outcome))
    assert breaker.state is CircuitState.OPEN


async def test_exceptions_outside_record_on_count_as_successes(clock: FakeClock) -> None:
    breaker = make(clock, record_on=(Boom,), window=2, min_calls=2)

    async def other() -> str:
        raise KeyError("not an upstream failure")

    for _ in range(2):
        with pytest.raises(KeyError):
            await breaker.call(other)
    snapshot = breaker.metrics()
    assert (snapshot.buffered_calls, snapshot.failed_calls) == (2, 0)
    assert breaker.state is CircuitState.CLOSED


async def test_record_on_and_ignore_on_accept_predicates(clock: FakeClock) -> None:
    breaker = make(
        clock,
        record_on=lambda exc: "bad" in str(exc),
        ignore_on=lambda exc: "skip" in str(exc),
    )
    for message in ("bad", "fine", "skip bad"):

        async def raising(message: str = message) -> str:
            raise RuntimeError(message)

        with pytest.raises(RuntimeError):
            await breaker.call(raising)
    snapshot = breaker.metrics()
    assert (snapshot.buffered_calls, snapshot.failed_calls) == (2, 1)


async def test_record_result_turns_a_return_value_into_a_failure(clock: FakeClock) -> None:
    breaker = make(clock, record_result=lambda result: result == 503, window=2, min_calls=2)

    async def status(code: int) -> int:
        return code

    assert await breaker.call(status, 503) == 503
    assert await breaker.call(status, 200) == 200
    assert breaker.state is CircuitState.OPEN


# -- 8. clock safety -------------------------------------------------------------


@pytest.mark.parametrize("jump", [-3600.0, 3600.0])
async def test_wall_clock_jump_does_not_change_the_open_period(
    clock: FakeClock, jump: float
) -> None:
    breaker = make(clock)
    await open_breaker(breaker)
    clock.shift_wall(jump)
    await clock.advance(4.5)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == pytest.approx(0.5)
    await clock.advance(0.5)
    assert breaker.state is CircuitState.HALF_OPEN


# -- 9. growing open time --------------------------------------------------------


async def reopen_durations(breaker: CircuitBreaker, clock: FakeClock, times: int) -> list[float]:
    """Open the breaker, then fail a probe ``times - 1`` times; the open period of each."""
    durations = []
    await open_breaker(breaker)
    for i in range(times):
        with pytest.raises(CircuitOpenError) as caught:
            await breaker.call(ok)
        assert caught.value.retry_after is not None
        durations.append(caught.value.retry_after)
        if i < times - 1:
            await clock.advance(caught.value.retry_after)
            await run(breaker, fail, 3)  # every probe fails: re-open
    return durations


async def test_open_period_grows_on_each_reopen_up_to_the_cap(clock: FakeClock) -> None:
    breaker = make(clock, open_for_multiplier=2.0, max_open_for=20.0)
    durations = await reopen_durations(breaker, clock, 5)
    assert 5.0 <= durations[0] <= 5.5
    assert 9.0 <= durations[1] <= 11.0
    assert 18.0 <= durations[2] <= 20.0
    assert all(18.0 <= d <= 20.0 for d in durations[3:])
    assert len(set(durations)) == 5  # jittered, even at the cap


async def test_open_period_is_back_to_open_for_after_closing(clock: FakeClock) -> None:
    breaker = make(clock, open_for_multiplier=3.0, max_open_for=100.0)
    durations = await reopen_durations(breaker, clock, 3)
    assert durations[2] > 40.0
    await clock.advance(durations[2])
    await run(breaker, ok, 3)
    assert breaker.state is CircuitState.CLOSED
    assert (await reopen_durations(breaker, clock, 1))[0] <= 5.5


async def test_open_period_never_goes_below_open_for_despite_jitter(clock: FakeClock) -> None:
    for seed in range(30):
        breaker = make(clock, open_for_multiplier=1.05, max_open_for=5.2, random=Random(seed))
        durations = await reopen_durations(breaker, clock, 3)
        assert all(5.0 <= d <= 5.2 for d in durations)


async def test_growing_open_period_without_a_cap_stops_at_one_day(clock: FakeClock) -> None:
    breaker = make(clock, open_for_multiplier=1000.0)
    durations = await reopen_durations(breaker, clock, 4)
    assert 86_400.0 * 0.9 <= durations[-1] <= 86_400.0


async def test_same_seed_gives_the_same_open_periods() -> None:
    runs = []
    for _ in range(2):
        clock = FakeClock()
        breaker = make(clock, open_for_multiplier=2.0, max_open_for=60.0, random=Random(42))
        runs.append(await reopen_durations(breaker, clock, 4))
    assert runs[0] == runs[1]


async def test_retry_after_is_the_time_left_of_the_open_period(clock: FakeClock) -> None:
    breaker = make(clock)
    await open_breaker(breaker)
    for elapsed in (0.0, 1.25, 4.0):
        await clock.advance(elapsed - (clock.monotonic() - 1000.0))
        with pytest.raises(CircuitOpenError) as caught:
            await breaker.call(ok)
        assert caught.value.retry_after == pytest.approx(5.0 - elapsed)
        assert not isinstance(caught.value, CircuitForcedOpenError)


async def test_retry_after_in_half_open_is_the_time_left_to_decide(clock: FakeClock) -> None:
    breaker = make(clock, half_open_calls=1)
    await half_open(breaker, clock)
    probe = asyncio.ensure_future(breaker.call(sleeper(clock, 100.0)))
    await clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == pytest.approx(20.0)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)


# -- 10. manual states and events ------------------------------------------------


async def test_force_open_rejects_with_a_distinct_error_until_closed(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    breaker.force_open()
    await clock.advance(3600.0)
    with pytest.raises(CircuitForcedOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after is None
    assert caught.value.policy == "svc"
    assert breaker.state is CircuitState.FORCED_OPEN
    breaker.close()
    assert await breaker.call(ok) == "ok"
    assert transitions(events) == [
        ("closed", "forced_open", "manual"),
        ("forced_open", "closed", "manual"),
    ]
    rejected = [e for e in events if e.kind == "circuit_breaker.rejected"]
    assert [e.attributes for e in rejected] == [{"state": "forced_open", "retry_after": None}]


async def test_disabled_allows_every_call_and_records_nothing(clock: FakeClock) -> None:
    breaker = make(clock)
    await open_breaker(breaker)
    breaker.disable()
    await run(breaker, fail, 50)
    assert breaker.state is CircuitState.DISABLED
    assert breaker.metrics().buffered_calls == 0


async def test_calls_finishing_after_disable_are_not_recorded(clock: FakeClock) -> None:
    breaker = make(clock)
    calls = [asyncio.ensure_future(breaker.call(sleeper(clock, 1.0))) for _ in range(3)]
    await clock.settle()
    breaker.disable()
    await clock.advance(1.0)
    assert await asyncio.gather(*calls) == ["ok"] * 3
    assert breaker.metrics().buffered_calls == 0


async def test_metrics_only_records_and_reports_would_open_instead(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    breaker.metrics_only()
    await run(breaker, fail, 15)
    assert breaker.state is CircuitState.METRICS_ONLY
    assert breaker.metrics().failed_calls == 10
    would_open = [e for e in events if e.kind == "circuit_breaker.would_open"]
    assert len(would_open) == 1  # once per crossing, not once per call
    assert would_open[0].attributes["reason"] == "failure_rate"
    await run(breaker, ok, 10)  # back under the threshold re-arms it
    await run(breaker, fail, 5)
    assert len([e for e in events if e.kind == "circuit_breaker.would_open"]) == 2


async def test_reset_clears_the_window_and_closes(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    await open_breaker(breaker)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    breaker.reset()
    assert breaker.metrics() == CircuitMetrics(
        state=CircuitState.CLOSED,
        failure_rate=0.0,
        slow_call_rate=0.0,
        buffered_calls=0,
        failed_calls=0,
        slow_calls=0,
        not_permitted_calls=0,
    )
    assert transitions(events)[-1] == ("open", "closed", "reset")
    assert events[-1].kind == "circuit_breaker.reset"
    breaker.reset()  # resetting a closed breaker emits no transition
    assert len(transitions(events)) == 2


async def test_asking_for_the_current_manual_state_changes_nothing(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    breaker.close()
    breaker.disable()
    breaker.disable()
    assert transitions(events) == [("closed", "disabled", "manual")]


async def test_one_transition_event_under_concurrent_failures(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    calls = [breaker.call(sleeper(clock, 1.0, outcome="fail")) for _ in range(50)]
    await clock.run(asyncio.gather(*calls, return_exceptions=True))
    assert transitions(events) == [("closed", "open", "failure_rate")]


async def test_one_transition_event_when_concurrent_probes_finish(clock: FakeClock) -> None:
    breaker = make(clock)
    events = record(breaker)
    await half_open(breaker, clock)
    calls = [breaker.call(sleeper(clock, 1.0)) for _ in range(10)]
    await clock.run(asyncio.gather(*calls, return_exceptions=True))
    assert transitions(events) == [
        ("closed", "open", "failure_rate"),
        ("open", "half_open", "open_period_elapsed"),
        ("half_open", "closed", "probes_succeeded"),
    ]


async def test_outcome_events_are_built_only_for_listeners(clock: FakeClock) -> None:
    breaker = make(clock)
    await run(breaker, ok)
    await run(breaker, fail)
    events = record(breaker)
    await clock.run(breaker.call(sleeper(clock, 2.0)))
    await run(breaker, fail)
    assert [(e.kind, e.attributes) for e in events] == [
        ("circuit_breaker.success", {"duration": 2.0, "slow": True}),
        ("circuit_breaker.failure", {"duration": 0.0, "slow": False}),
    ]


# -- 11. no serialization, async works -------------------------------------------


async def test_concurrent_calls_are_not_serialized(clock: FakeClock) -> None:
    breaker = make(clock, window=200, min_calls=200)
    start = clock.monotonic()
    results = await clock.run(
        asyncio.gather(*(breaker.call(sleeper(clock, 0.1)) for _ in range(100)))
    )
    assert results == ["ok"] * 100
    assert clock.monotonic() - start == pytest.approx(0.1)
    assert breaker.metrics().buffered_calls == 100


async def test_a_failing_async_def_is_counted_through_the_decorator(clock: FakeClock) -> None:
    breaker = make(clock, window=3, min_calls=3)

    @breaker
    async def fetch(order_id: str, *, retries: int = 0) -> str:
        raise Boom(order_id)

    for _ in range(3):
        with pytest.raises(Boom):
            await fetch("o-1", retries=1)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await fetch("o-2")


# -- the store -------------------------------------------------------------------


async def test_breakers_sharing_a_store_see_each_others_state(clock: FakeClock) -> None:
    store = MemoryBreakerStore()
    first = make(clock, store=store)
    second = make(clock, store=store)
    events = record(second)
    await run(second, ok, 3)
    await open_breaker(first)
    with pytest.raises(CircuitOpenError):
        await second.call(ok)
    assert transitions(events) == [("closed", "open", "shared")]
    first.close()
    assert await second.call(ok) == "ok"
    assert second.metrics().buffered_calls == 1  # a fresh window on closing


async def test_adopting_a_generation_with_the_same_state_emits_nothing(clock: FakeClock) -> None:
    store = MemoryBreakerStore()
    first = make(clock, store=store)
    second = make(clock, store=store)
    events = record(second)
    first.reset()
    second.disable()
    assert transitions(events) == [("closed", "disabled", "manual")]


async def test_a_transition_lost_to_another_writer_is_not_announced(clock: FakeClock) -> None:
    class LosingStore(MemoryBreakerStore):
        __slots__ = ()

        def transition(self, expected_generation: int, *args: Any, **kwargs: Any) -> Any:
            return None

    breaker = make(clock, store=LosingStore())
    events = record(breaker)
    await run(breaker, fail, 10)
    breaker.force_open()
    assert breaker.state is CircuitState.CLOSED
    assert transitions(events) == []


async def test_a_probe_verdict_reached_after_the_store_moved_on_is_dropped(
    clock: FakeClock,
) -> None:
    class ForeignMoveStore(MemoryBreakerStore):
        """Another process forces the breaker open while a probe's tally travels."""

        __slots__ = ()

        async def complete_probe(self, generation: int, failed: bool, slow: bool) -> Any:
            tally = await super().complete_probe(generation, failed, slow)
            view = self.view()
            self.transition(
                view.generation, CircuitState.FORCED_OPEN, hold_for=math.inf, reopens=0, now=0.0
            )
            return tally

    breaker = make(clock, half_open_calls=1, store=ForeignMoveStore())
    events = record(breaker)
    await half_open(breaker, clock)
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.FORCED_OPEN
    assert transitions(events)[-1] == ("half_open", "forced_open", "shared")


async def test_a_store_reports_the_probe_tally_only_for_its_generation() -> None:
    store = MemoryBreakerStore()
    assert not await store.acquire_probe(0, 1)  # closed: no probes
    view = store.transition(0, CircuitState.HALF_OPEN, hold_for=10.0, reopens=0, now=5.0)
    assert view is not None
    assert view.until == 15.0
    assert store.transition(0, CircuitState.OPEN, hold_for=1.0, reopens=1, now=5.0) is None
    assert await store.acquire_probe(1, 1)
    assert not await store.acquire_probe(1, 1)
    assert await store.complete_probe(0, True, False) is None
    assert await store.complete_probe(1, True, False) == (1, 1, 0)
    store.release_probe(1)  # a completed probe keeps its permit
    assert store.probes_granted == 1
    assert "half_open" in repr(store)


# -- configuration and surface ---------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"failure_rate": 0}, "failure_rate must be a percentage in (0, 100], got 0"),
        ({"failure_rate": 100.5}, "failure_rate must be a percentage"),
        ({"failure_rate": True}, "failure_rate must be a percentage"),
        ({"failure_rate": math.nan}, "failure_rate must be a percentage"),
        ({"slow_call_rate": -1.0}, "slow_call_rate must be a percentage"),
        ({"slow_call_duration": 0}, "slow_call_duration must be a finite number of seconds > 0"),
        ({"slow_call_duration": "60s"}, "slow_call_duration must be a finite number of seconds"),
        ({"window_type": "sliding"}, "window_type must be 'count' or 'time', got 'sliding'"),
        ({"window": 0}, "window must be an integer >= 1, got 0"),
        ({"window": 10.0}, "window must be an integer >= 1, got 10.0"),
        ({"min_calls": 0}, "min_calls must be an integer >= 1"),
        ({"open_for": 0.0}, "open_for must be a finite number of seconds > 0"),
        ({"open_for": math.inf}, "open_for must be a finite number of seconds > 0"),
        ({"open_for_multiplier": 0.5}, "open_for_multiplier must be a finite number >= 1, got 0.5"),
        ({"open_for_multiplier": math.inf}, "open_for_multiplier must be a finite number"),
        ({"open_for_multiplier": False}, "open_for_multiplier must be a finite number"),
        ({"max_open_for": 1.0}, "max_open_for must be >= open_for (60.0), got 1.0"),
        ({"max_open_for": -5}, "max_open_for must be a finite number of seconds > 0"),
        ({"half_open_calls": 0}, "half_open_calls must be an integer >= 1"),
        ({"max_wait_in_half_open": 0}, "max_wait_in_half_open must be a finite number of seconds"),
        ({"record_on": "Boom"}, "record_on must be an exception type"),
        ({"record_on": ()}, "record_on must name at least one exception type"),
        ({"ignore_on": (Boom, int)}, "ignore_on must hold Exception subclasses"),
        ({"record_result": 503}, "record_result must be a predicate (result) -> bool or None"),
    ],
)
def test_bad_arguments_raise_config_error(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CircuitBreaker(**arguments)
    assert str(caught.value).startswith("CircuitBreaker ")
    assert message in str(caught.value)


async def test_defaults_open_at_half_of_100_calls_for_60_seconds(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.name == "circuit_breaker"
    assert repr(breaker) == "CircuitBreaker(name='circuit_breaker', state=closed)"
    await clock.run(breaker.call(sleeper(clock, 60.0)))  # exactly 60 s: not slow
    await run(breaker, ok, 49)
    await run(breaker, fail, 49)
    assert breaker.metrics().slow_calls == 0
    assert breaker.state is CircuitState.CLOSED  # 99 calls: below min_calls
    await run(breaker, fail)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == 60.0
    await clock.advance(60.0)
    for _ in range(10):
        await breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED  # after ten probes


async def test_runs_on_the_real_clock_by_default() -> None:
    breaker = CircuitBreaker(window=1, min_calls=1)
    assert await breaker.call(ok) == "ok"
    with pytest.raises(Boom):
        await breaker.call(fail)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after is not None
    assert 0.0 < caught.value.retry_after <= 60.0


def test_metrics_snapshot_is_frozen(clock: FakeClock) -> None:
    snapshot = make(clock).metrics()
    with pytest.raises(AttributeError):
        snapshot.failed_calls = 3  # type: ignore[misc]


async def test_local_rejections_inside_the_breaker_say_nothing_about_the_upstream(
    clock: FakeClock,
) -> None:
    from interlink.core.errors import BulkheadFullError, RateLimitedError

    breaker = CircuitBreaker(window=4, min_calls=4, clock=clock)
    for error in [BulkheadFullError("full"), RateLimitedError("slow down")] * 4:

        async def rejected(error: Exception = error) -> None:
            raise error

        with pytest.raises(type(error)):
            await breaker.call(rejected)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().buffered_calls == 0
