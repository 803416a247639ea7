"""Hedge: behaviour 24 of resilience.md (d), with gRPC A6 and Polly's hedging rules."""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
from collections.abc import Callable

import pytest

from interlink.core.errors import (
    AttemptTimeoutError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
)
from interlink.resilience import Deadline, ResilienceEvent, Timeout, current_deadline
from interlink.resilience._budget import RetryBudget
from interlink.resilience._hedge import Hedge
from interlink.testing import FakeClock


class Upstream:
    """Attempts that take scripted times (on the fake clock) and may fail."""

    def __init__(self, clock: FakeClock, script: list[tuple[float, BaseException | str]]) -> None:
        self.clock = clock
        self.script = script
        self.started: list[float] = []
        self.finished: list[int] = []  # attempt numbers whose finally ran

    async def __call__(self) -> str:
        n = len(self.started)
        self.started.append(self.clock.monotonic())
        seconds, outcome = self.script[n]
        try:
            await self.clock.sleep(seconds)
        finally:
            self.finished.append(n + 1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def record(hedge: Hedge) -> list[ResilienceEvent]:
    seen: list[ResilienceEvent] = []
    hedge.events.subscribe(seen.append)
    return seen


def kinds(events: list[ResilienceEvent]) -> list[tuple[str, dict[str, object]]]:
    return [(e.kind, dict(e.attributes)) for e in events]


async def test_a_fast_primary_wins_alone(clock: FakeClock) -> None:
    hedge = Hedge(delay=1.0, clock=clock)
    seen = record(hedge)
    upstream = Upstream(clock, [(0.5, "primary")])

    assert await clock.run(hedge.call(upstream)) == "primary"
    assert upstream.started == [1000.0]
    assert kinds(seen) == [("hedge.winner", {"attempt": 1, "attempts": 1, "elapsed": 0.5})]
    assert clock.pending == 0


async def test_a_slow_primary_gets_a_hedge_after_the_delay_and_the_first_success_wins(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=1.0, clock=clock)
    seen = record(hedge)
    upstream = Upstream(clock, [(10.0, "primary"), (0.5, "hedge")])

    assert await clock.run(hedge.call(upstream)) == "hedge"
    assert upstream.started == [1000.0, 1001.0]
    assert clock.monotonic() == 1001.5
    assert kinds(seen) == [
        ("hedge.hedge", {"attempt": 2, "reason": "delay"}),
        ("hedge.winner", {"attempt": 2, "attempts": 2, "elapsed": 1.5}),
    ]


async def test_losers_are_cancelled_and_awaited_before_the_result_returns(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=1.0, max_hedges=2, clock=clock)
    upstream = Upstream(clock, [(60.0, "a"), (0.5, "b"), (60.0, "c")])

    async def caller() -> tuple[str, list[int]]:
        result = await hedge.call(upstream)
        return result, list(upstream.finished)

    result, finished_at_return = await clock.run(caller())
    assert result == "b"
    assert sorted(finished_at_return) == [1, 2]  # the third never started: b won at 1.5
    assert len(upstream.started) == 2
    assert clock.pending == 0


async def test_hedges_start_every_delay_up_to_max_hedges(clock: FakeClock) -> None:
    hedge = Hedge(delay=1.0, max_hedges=2, clock=clock)
    upstream = Upstream(clock, [(10.0, "a"), (10.0, "b"), (2.5, "c")])

    assert await clock.run(hedge.call(upstream)) == "c"
    assert upstream.started == [1000.0, 1001.0, 1002.0]
    assert clock.monotonic() == 1004.5
    assert sorted(upstream.finished) == [1, 2, 3]


async def test_a_zero_delay_starts_every_attempt_at_once(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.0, max_hedges=2, clock=clock)
    upstream = Upstream(clock, [(3.0, "a"), (1.0, "b"), (2.0, "c")])

    assert await clock.run(hedge.call(upstream)) == "b"
    assert upstream.started == [1000.0, 1000.0, 1000.0]


async def test_an_error_fires_the_next_hedge_at_once(clock: FakeClock) -> None:
    hedge = Hedge(delay=5.0, max_hedges=2, clock=clock)
    seen = record(hedge)
    upstream = Upstream(
        clock, [(0.2, ConnectionResetError("reset")), (10.0, "slow"), (1.0, "third")]
    )

    assert await clock.run(hedge.call(upstream)) == "third"
    # The error at 0.2 fired attempt 2 at once; attempt 3 came one delay after it.
    assert upstream.started == [1000.0, 1000.2, 1005.2]
    assert kinds(seen)[:2] == [
        ("hedge.hedge", {"attempt": 2, "reason": "error"}),
        ("hedge.hedge", {"attempt": 3, "reason": "delay"}),
    ]


async def test_when_every_attempt_fails_the_primarys_error_is_raised(clock: FakeClock) -> None:
    hedge = Hedge(delay=1.0, max_hedges=2, clock=clock)
    primary_error = ConnectionResetError("primary")
    upstream = Upstream(
        clock,
        [(3.0, primary_error), (0.5, ConnectionError("second")), (0.5, OSError("third"))],
    )

    with pytest.raises(ConnectionResetError) as caught:
        await clock.run(hedge.call(upstream))
    assert caught.value is primary_error
    assert len(upstream.started) == 3


async def test_a_fatal_error_ends_the_call_and_cancels_the_other_attempts(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=1.0, clock=clock)
    rejected = CircuitOpenError("open", retry_after=5.0)
    upstream = Upstream(clock, [(60.0, "primary"), (0.1, rejected)])

    with pytest.raises(CircuitOpenError) as caught:
        await clock.run(hedge.call(upstream))
    assert caught.value is rejected
    assert clock.monotonic() == 1001.1
    assert sorted(upstream.finished) == [1, 2]


@pytest.mark.parametrize(
    "hedge_on",
    [ConnectionError, (ConnectionError, TimeoutError), lambda e: isinstance(e, ConnectionError)],
)
async def test_hedge_on_chooses_which_errors_fire_a_hedge(
    clock: FakeClock, hedge_on: type[BaseException] | tuple[type[BaseException], ...]
) -> None:
    hedge = Hedge(delay=10.0, hedge_on=hedge_on, clock=clock)
    upstream = Upstream(clock, [(0.1, ConnectionResetError()), (0.1, "hedge")])
    assert await clock.run(hedge.call(upstream)) == "hedge"

    other = Upstream(clock, [(0.1, ValueError("bad input"))])
    with pytest.raises(ValueError, match="bad input"):
        await clock.run(hedge.call(other))
    assert len(other.started) == 1


async def test_an_attempt_timeout_inside_the_hedge_fires_the_next_hedge(
    clock: FakeClock,
) -> None:
    timeout = Timeout(0.5, clock=clock)
    hedge = Hedge(delay=10.0, clock=clock)
    upstream = Upstream(clock, [(60.0, "hung"), (0.1, "fresh")])

    assert await clock.run(hedge.call(timeout.call, upstream)) == "fresh"
    assert upstream.started == [1000.0, 1000.5]


async def test_a_lone_timeout_failure_is_the_primary_error(clock: FakeClock) -> None:
    timeout = Timeout(0.5, clock=clock)
    hedge = Hedge(delay=10.0, max_hedges=1, clock=clock)
    upstream = Upstream(clock, [(60.0, "hung"), (60.0, "hung too")])

    with pytest.raises(AttemptTimeoutError):
        await clock.run(hedge.call(timeout.call, upstream))
    assert upstream.started == [1000.0, 1000.5]
    assert clock.monotonic() == 1001.0


async def test_hedges_spend_from_the_budget_and_stop_when_it_refuses(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0, clock=clock)  # one hedge
    hedge = Hedge(delay=1.0, max_hedges=2, budget=budget, clock=clock)
    seen = record(hedge)
    upstream = Upstream(clock, [(5.0, "a"), (5.0, "b"), (5.0, "c")])

    assert await clock.run(hedge.call(upstream)) == "a"
    assert upstream.started == [1000.0, 1001.0]  # the second hedge was refused
    assert ("hedge.skipped", {"attempt": 3, "reason": "budget"}) in kinds(seen)
    assert budget.retries == 1


async def test_a_hedge_never_records_requests_in_the_budget(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    hedge = Hedge(delay=1.0, budget=budget, clock=clock)
    await clock.run(hedge.call(Upstream(clock, [(0.1, "ok")])))
    assert budget.requests == 0


async def test_attempts_run_in_the_callers_context(clock: FakeClock) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    hedge = Hedge(delay=1.0, clock=clock)
    seen: list[tuple[str, float | None]] = []

    async def attempt() -> str:
        seen.append((request_id.get(), current_deadline()))
        if len(seen) == 1:
            await clock.sleep(60)
        return "ok"

    async def caller() -> str:
        request_id.set("req-7")
        return await Deadline(30.0, clock=clock).call(hedge.call, attempt)

    assert await clock.run(caller()) == "ok"
    assert seen == [("req-7", 1030.0), ("req-7", 1030.0)]


async def test_no_hedge_starts_once_the_deadline_has_passed(clock: FakeClock) -> None:
    hedge = Hedge(delay=2.0, clock=clock)
    seen = record(hedge)
    upstream = Upstream(clock, [(5.0, "primary"), (0.1, "hedge")])

    async def spawn() -> asyncio.Task[str]:
        # The task inherits the 1 s deadline but not the Deadline's timer.
        return asyncio.create_task(hedge.call(upstream))

    task = await Deadline(1.0, clock=clock).call(spawn)
    assert await clock.run(task) == "primary"
    assert upstream.started == [1000.0]
    assert ("hedge.skipped", {"attempt": 2, "reason": "deadline"}) in kinds(seen)


async def test_a_deadline_around_the_hedge_cancels_every_attempt(clock: FakeClock) -> None:
    hedge = Hedge(delay=1.0, max_hedges=2, clock=clock)
    upstream = Upstream(clock, [(60.0, "a"), (60.0, "b"), (60.0, "c")])

    with pytest.raises(DeadlineExceededError):
        await clock.run(Deadline(2.5, clock=clock).call(hedge.call, upstream))
    assert sorted(upstream.finished) == [1, 2, 3]
    assert clock.pending == 0


async def test_cancelling_the_caller_cancels_and_awaits_every_attempt(clock: FakeClock) -> None:
    hedge = Hedge(delay=1.0, max_hedges=2, clock=clock)
    upstream = Upstream(clock, [(60.0, "a"), (60.0, "b"), (60.0, "c")])

    task = asyncio.create_task(hedge.call(upstream))
    await clock.advance(1.5)
    assert len(upstream.started) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(upstream.finished) == [1, 2]
    assert clock.pending == 0


async def test_an_attempt_cancelled_from_inside_cancels_the_call(clock: FakeClock) -> None:
    hedge = Hedge(delay=1.0, clock=clock)

    async def gives_up() -> str:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
        return "never"

    with pytest.raises(asyncio.CancelledError):
        await clock.run(hedge.call(gives_up))


# -- the learned delay -------------------------------------------------------


async def test_the_delay_is_learned_as_the_percentile_of_recent_latencies(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=5.0, percentile=95.0, window=20, min_samples=10, clock=clock)
    latencies = [round(0.1 * n, 1) for n in range(1, 21)]  # 0.1 .. 2.0 s

    for n, seconds in enumerate(latencies, start=1):
        await clock.run(hedge.call(clock.sleep, seconds))
        if n < 10:
            assert hedge.current_delay == 5.0
    # Position 0.95 * (20 + 1) = 19.95: between the 19th and 20th latency.
    assert hedge.current_delay == pytest.approx(1.995)


async def test_the_learned_delay_follows_recent_latencies_only(clock: FakeClock) -> None:
    hedge = Hedge(delay=5.0, percentile=50.0, window=10, min_samples=10, clock=clock)
    for _ in range(10):
        await clock.run(hedge.call(clock.sleep, 1.0))
    assert hedge.current_delay == pytest.approx(1.0)
    for _ in range(10):
        await clock.run(hedge.call(clock.sleep, 0.25))
    assert hedge.current_delay == pytest.approx(0.25)


async def test_without_a_delay_only_errors_fire_hedges_until_one_is_learned(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=None, percentile=90.0, window=10, min_samples=10, clock=clock)
    assert hedge.current_delay is None
    slow = Upstream(clock, [(30.0, "slow primary"), (0.1, "unused")])
    assert await clock.run(hedge.call(slow)) == "slow primary"
    assert len(slow.started) == 1
    failing = Upstream(clock, [(0.1, ConnectionError()), (0.1, "hedge")])
    assert await clock.run(hedge.call(failing)) == "hedge"


async def test_a_hedged_call_teaches_the_primarys_lower_bound_not_the_hedges_latency(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=1.0, percentile=50.0, window=1, min_samples=1, clock=clock)
    upstream = Upstream(clock, [(10.0, "slow"), (0.25, "fast")])
    assert await clock.run(hedge.call(upstream)) == "fast"
    assert hedge.current_delay == pytest.approx(1.25)


async def test_with_a_p95_delay_hedging_adds_about_five_percent_load(clock: FakeClock) -> None:
    rng = random.Random(20240601)
    hedge = Hedge(delay=0.5, percentile=95.0, max_hedges=2, clock=clock)
    attempts = 0

    async def backend() -> None:
        nonlocal attempts
        attempts += 1
        await clock.sleep(rng.lognormvariate(math.log(0.05), 0.6))  # median 50 ms

    async def traffic(calls: int) -> None:
        for _ in range(calls):
            await hedge.call(backend)

    await clock.run(traffic(200))  # warm up: learn the delay
    attempts = 0
    await clock.run(traffic(2000))
    extra = attempts / 2000 - 1
    assert 0.02 < extra <= 0.06


# -- configuration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": -1.0}, "delay must be a finite number of seconds >= 0"),
        ({"delay": math.inf}, "delay must be a finite"),
        ({"delay": "2s"}, "delay must be"),
        ({"delay": True}, "delay must be"),
        ({"percentile": 0}, r"percentile must be a percentage in \(0, 100\), got 0"),
        ({"percentile": 100}, "percentile must be"),
        ({"percentile": "p95"}, "percentile must be"),
        ({"percentile": False}, "percentile must be"),
        ({"delay": None}, "needs a delay, a percentile, or both"),
        ({"window": 0}, "window must be an integer >= 1"),
        ({"window": 2.5}, "window must be an integer"),
        ({"min_samples": 0}, "min_samples must be an integer >= 1"),
        ({"min_samples": True}, "min_samples must be an integer"),
        ({"window": 5, "min_samples": 6}, r"min_samples must be <= window \(5\), got 6"),
        ({"max_hedges": 0}, "max_hedges must be an integer >= 1"),
        ({"max_hedges": 1.0}, "max_hedges must be an integer"),
        ({"max_hedges": True}, "max_hedges must be an integer"),
        ({"budget": 0.2}, "budget must be a RetryBudget or None"),
        ({"hedge_on": ()}, "hedge_on must name at least one exception type"),
        ({"hedge_on": (ValueError, "x")}, "hedge_on must hold Exception subclasses"),
        ({"hedge_on": int}, "hedge_on must hold Exception subclasses"),
        ({"hedge_on": "ValueError"}, "hedge_on must be an exception type, a tuple of them or a"),
    ],
)
def test_bad_arguments_are_config_errors_naming_them(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"Hedge {message}"):
        Hedge(**kwargs)  # type: ignore[arg-type]


def test_defaults_follow_polly_and_show_in_repr() -> None:
    hedge = Hedge()
    assert (hedge.delay, hedge.percentile, hedge.max_hedges) == (2.0, None, 1)
    assert (hedge.window, hedge.min_samples, hedge.budget) == (100, 20, None)
    assert hedge.current_delay == 2.0
    assert repr(hedge) == "Hedge(delay=2.0, percentile=None, max_hedges=1, name='hedge')"


async def test_with_budget_copies_the_settings_and_keeps_the_event_hub(
    clock: FakeClock,
) -> None:
    predicate: Callable[[BaseException], bool] = lambda e: isinstance(e, OSError)  # noqa: E731
    hedge = Hedge(delay=0.3, percentile=90.0, max_hedges=3, hedge_on=predicate, clock=clock)
    budget = RetryBudget(clock=clock)
    twin = hedge.with_budget(budget)
    assert twin is not hedge
    assert twin.budget is budget
    assert hedge.budget is None
    assert (twin.delay, twin.percentile, twin.max_hedges, twin.hedge_on) == (
        0.3,
        90.0,
        3,
        predicate,
    )
    assert twin.events is hedge.events
    assert twin.clock is clock
    assert twin.name == hedge.name
