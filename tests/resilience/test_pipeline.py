"""Pipeline: the documented order proven by behaviour (parts of behaviours 15, 19, 20 and 23
of resilience.md (d)), budget wiring, and ``from_dict`` with its config errors."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import pytest

from interlink.core.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    RetryExhaustedError,
    ThrottledLocallyError,
)
from interlink.resilience import (
    AdaptiveThrottle,
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    Deadline,
    Fallback,
    Hedge,
    Pipeline,
    RateLimiter,
    ResilienceEvent,
    Retry,
    RetryBudget,
    Timeout,
)
from interlink.resilience._pipeline import _DURATIONS, _SECTIONS, ORDER
from interlink.testing import FakeClock

P = ParamSpec("P")
T = TypeVar("T")


class Flaky:
    """A callee that fails ``failures`` times, then answers; counts its calls."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error if error is not None else ConnectionResetError("reset")
        self.calls = 0

    async def __call__(self, value: str = "ok") -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.failures:
            raise self.error
        return value


def fast_retry(clock: FakeClock, attempts: int = 3, **kwargs: Any) -> Retry:
    return Retry(
        max_attempts=attempts,
        initial_delay=0.1,
        jitter="none",
        random=random.Random(7),
        clock=clock,
        **kwargs,
    )


def eager_breaker(clock: FakeClock, calls: int = 3) -> CircuitBreaker:
    return CircuitBreaker(window=calls, min_calls=calls, failure_rate=100.0, clock=clock)


# -- composition -------------------------------------------------------------


async def test_an_empty_pipeline_just_awaits_the_call() -> None:
    pipeline = Pipeline()
    assert pipeline.policies == ()
    assert await pipeline.call(Flaky(), "plain") == "plain"


async def test_the_parts_are_kept_outside_in_whatever_the_argument_order(
    clock: FakeClock,
) -> None:
    parts: dict[str, Any] = {
        "timeout": Timeout(1.0, clock=clock),
        "rate_limiter": RateLimiter(clock=clock),
        "bulkhead": Bulkhead(clock=clock),
        "breaker": CircuitBreaker(clock=clock),
        "throttle": AdaptiveThrottle(clock=clock),
        "hedge": Hedge(clock=clock),
        "retry": Retry(clock=clock),
        "deadline": Deadline(5.0, clock=clock),
        "fallback": Fallback("cached", clock=clock),
    }
    pipeline = Pipeline(**parts, clock=clock)
    assert pipeline.policies == tuple(parts[name] for name in ORDER)
    for name in ORDER:
        assert getattr(pipeline, name) is parts[name]
    assert (
        Pipeline.order
        == ORDER
        == (
            "fallback",
            "deadline",
            "retry",
            "hedge",
            "throttle",
            "breaker",
            "bulkhead",
            "rate_limiter",
            "timeout",
        )
    )
    assert repr(pipeline).startswith("Pipeline(name='pipeline', policies=[Fallback(")


async def test_each_policy_gets_the_next_policys_call_as_its_function(clock: FakeClock) -> None:
    received: list[Callable[..., Any]] = []

    class SpyBulkhead(Bulkhead):
        async def call(
            self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
        ) -> T:
            received.append(fn)
            return await super().call(fn, *args, **kwargs)

    limiter, timeout = RateLimiter(rate=100.0, clock=clock), Timeout(1.0, clock=clock)
    pipeline = Pipeline(bulkhead=SpyBulkhead(clock=clock), rate_limiter=limiter, timeout=timeout)
    callee = Flaky()
    assert await pipeline.call(callee, "through") == "through"
    assert received == [limiter.call]
    alone = Pipeline(bulkhead=SpyBulkhead(clock=clock))
    assert await alone.call(callee, "direct") == "direct"
    assert received[-1] == callee


async def test_the_pipeline_decorates_a_coroutine_function(clock: FakeClock) -> None:
    pipeline = Pipeline(retry=fast_retry(clock), clock=clock)
    callee = Flaky(failures=1)

    @pipeline
    async def fetch(order_id: str) -> str:
        return await callee(order_id)

    assert await clock.run(fetch("42")) == "42"
    assert callee.calls == 2


async def test_a_breaker_inside_the_retry_sees_every_attempt(clock: FakeClock) -> None:
    breaker = eager_breaker(clock, calls=3)
    pipeline = Pipeline(retry=fast_retry(clock, attempts=3), breaker=breaker)
    callee = Flaky(failures=10)

    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(pipeline.call(callee))
    assert caught.value.attempts == 3
    metrics = breaker.metrics()
    assert (metrics.buffered_calls, metrics.failed_calls) == (3, 3)
    assert breaker.state is CircuitState.OPEN


async def test_an_open_breaker_is_not_retried_by_default(clock: FakeClock) -> None:
    breaker = eager_breaker(clock)
    breaker.force_open()
    pipeline = Pipeline(retry=fast_retry(clock), breaker=breaker)
    callee = Flaky()

    with pytest.raises(CircuitOpenError):
        await clock.run(pipeline.call(callee))
    assert callee.calls == 0


async def test_a_timeout_inside_the_breaker_is_recorded_as_a_failure(clock: FakeClock) -> None:
    breaker = eager_breaker(clock, calls=1)
    pipeline = Pipeline(breaker=breaker, timeout=0.5, clock=clock)

    with pytest.raises(AttemptTimeoutError):
        await clock.run(pipeline.call(clock.sleep, 60))
    assert clock.monotonic() == 1000.5
    assert breaker.metrics().failed_calls == 1
    assert breaker.state is CircuitState.OPEN


async def test_the_fallback_outermost_answers_when_retries_are_exhausted(
    clock: FakeClock,
) -> None:
    pipeline = Pipeline(
        fallback=Fallback("cached", on=RetryExhaustedError), retry=fast_retry(clock, attempts=2)
    )
    callee = Flaky(failures=5)
    assert await clock.run(pipeline.call(callee)) == "cached"
    assert callee.calls == 2


async def test_the_fallback_also_answers_for_the_deadline(clock: FakeClock) -> None:
    pipeline = Pipeline(
        fallback=Fallback("late", on=DeadlineExceededError), deadline=1.0, clock=clock
    )
    late: object = await clock.run(pipeline.call(clock.sleep, 60))
    assert late == "late"


async def test_a_bulkhead_rejection_is_not_retried_and_takes_no_token(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, clock=clock)
    limiter = RateLimiter(rate=1.0, burst=5.0, initial_tokens=5.0, clock=clock)
    pipeline = Pipeline(retry=fast_retry(clock), bulkhead=bulkhead, rate_limiter=limiter)
    holder = asyncio.create_task(pipeline.call(clock.sleep, 10))
    await clock.settle()
    assert bulkhead.in_use == 1
    tokens = limiter.available
    callee = Flaky()

    with pytest.raises(BulkheadFullError):
        await pipeline.call(callee)
    assert callee.calls == 0
    assert limiter.available == tokens
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    assert bulkhead.in_use == 0


async def test_an_open_breaker_rejects_before_the_bulkhead_is_asked(clock: FakeClock) -> None:
    breaker = eager_breaker(clock)
    bulkhead = Bulkhead(max_concurrent=1, clock=clock)
    pipeline = Pipeline(breaker=breaker, bulkhead=bulkhead)
    holder = asyncio.create_task(pipeline.call(clock.sleep, 10))
    await clock.settle()
    breaker.force_open()

    with pytest.raises(CircuitOpenError):
        await pipeline.call(Flaky())
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)


async def test_the_throttle_sees_the_breakers_rejections_as_overload(clock: FakeClock) -> None:
    breaker = eager_breaker(clock)
    breaker.force_open()
    throttle = AdaptiveThrottle(k=1.0, random=random.Random(3), clock=clock)
    pipeline = Pipeline(throttle=throttle, breaker=breaker)
    errors: list[type[BaseException]] = []
    for _ in range(50):
        try:
            await pipeline.call(Flaky())
        except (CircuitOpenError, ThrottledLocallyError) as exc:
            errors.append(type(exc))
    assert ThrottledLocallyError in errors


async def test_the_deadline_spans_every_attempt_and_backoff(clock: FakeClock) -> None:
    pipeline = Pipeline(
        deadline=1.0,
        retry=Retry(max_attempts=20, initial_delay=0.3, jitter="none", clock=clock),
        timeout=10.0,
        clock=clock,
    )
    callee = Flaky(failures=100)

    with pytest.raises((RetryExhaustedError, DeadlineExceededError)):
        await clock.run(pipeline.call(callee))
    assert clock.monotonic() <= 1001.0
    assert callee.calls < 20


async def test_the_timeout_bounds_each_hedged_attempt(clock: FakeClock) -> None:
    pipeline = Pipeline(hedge=Hedge(delay=5.0, clock=clock), timeout=0.5, clock=clock)
    answers = iter([60.0, 0.1])

    async def backend() -> str:
        await clock.sleep(next(answers))
        return "hedged"

    assert await clock.run(pipeline.call(backend)) == "hedged"
    assert clock.monotonic() == 1000.6


async def test_cancelling_the_caller_frees_the_bulkhead_slot(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, clock=clock)
    pipeline = Pipeline(retry=fast_retry(clock), bulkhead=bulkhead, timeout=5.0, clock=clock)
    task = asyncio.create_task(pipeline.call(clock.sleep, 60))
    await clock.settle()
    assert bulkhead.in_use == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bulkhead.in_use == 0
    assert clock.pending == 0


async def test_seconds_build_a_deadline_and_a_timeout_on_the_pipelines_clock(
    clock: FakeClock,
) -> None:
    pipeline = Pipeline(deadline=2, timeout=0.25, name="payments", clock=clock)
    assert isinstance(pipeline.deadline, Deadline)
    assert isinstance(pipeline.timeout, Timeout)
    assert (pipeline.deadline.seconds, pipeline.deadline.name) == (2.0, "payments.deadline")
    assert (pipeline.timeout.seconds, pipeline.timeout.name) == (0.25, "payments.timeout")
    assert pipeline.deadline.clock is clock
    assert pipeline.timeout.clock is clock


# -- the retry budget --------------------------------------------------------


async def test_the_budget_goes_to_a_copy_of_the_retry_and_the_original_is_untouched(
    clock: FakeClock,
) -> None:
    budget = RetryBudget(clock=clock)
    retry = fast_retry(clock)
    seen: list[ResilienceEvent] = []
    retry.events.subscribe(seen.append)
    pipeline = Pipeline(retry=retry, budget=budget)

    assert pipeline.retry is not retry
    assert pipeline.retry is not None
    assert pipeline.retry.budget is budget
    assert retry.budget is None
    assert pipeline.budget is budget
    await clock.run(pipeline.call(Flaky(failures=1)))
    assert budget.requests == 1
    assert budget.retries == 1
    assert any(e.kind == "retry.attempt" for e in seen)  # the copy shares the hub


async def test_the_budget_goes_to_a_copy_of_the_hedge(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    hedge = Hedge(delay=1.0, clock=clock)
    pipeline = Pipeline(hedge=hedge, budget=budget)
    assert pipeline.hedge is not None
    assert pipeline.hedge is not hedge
    assert pipeline.hedge.budget is budget
    assert hedge.budget is None


async def test_a_policy_already_holding_the_budget_is_used_as_it_is(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    retry = fast_retry(clock, budget=budget)
    pipeline = Pipeline(retry=retry, budget=budget)
    assert pipeline.retry is retry


@pytest.mark.parametrize("part", ["retry", "hedge"])
def test_a_different_budget_on_a_part_is_a_config_error(clock: FakeClock, part: str) -> None:
    own, shared = RetryBudget(clock=clock), RetryBudget(clock=clock)
    policy = fast_retry(clock, budget=own) if part == "retry" else Hedge(budget=own, clock=clock)
    parts: dict[str, Any] = {part: policy}
    with pytest.raises(ConfigError, match=f"Pipeline {part} already has its own budget"):
        Pipeline(**parts, budget=shared)


async def test_retry_and_hedge_share_the_budget_and_requests_count_once_per_call(
    clock: FakeClock,
) -> None:
    budget = RetryBudget(clock=clock)
    pipeline = Pipeline(retry=fast_retry(clock), hedge=Hedge(delay=1.0, clock=clock), budget=budget)
    for _ in range(5):
        await clock.run(pipeline.call(Flaky()))
    assert budget.requests == 5
    assert pipeline.policies[0] is pipeline.retry


async def test_without_a_retry_the_budget_records_the_hedged_requests(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    pipeline = Pipeline(hedge=Hedge(delay=1.0, clock=clock), budget=budget)
    assert pipeline.policies[0] is budget
    for _ in range(3):
        await clock.run(pipeline.call(Flaky()))
    assert budget.requests == 3


# -- constructor checks ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retry": Bulkhead()}, "Pipeline retry must be a Retry or None"),
        ({"breaker": "breaker"}, "Pipeline breaker must be a CircuitBreaker or None"),
        ({"fallback": "cached"}, "Pipeline fallback must be a Fallback or None"),
        ({"budget": 0.2}, "Pipeline budget must be a RetryBudget or None"),
        ({"hedge": Retry()}, "Pipeline hedge must be a Hedge or None"),
        ({"throttle": 2.0}, "Pipeline throttle must be an AdaptiveThrottle or None"),
        ({"bulkhead": 10}, "Pipeline bulkhead must be a Bulkhead or None"),
        ({"rate_limiter": 10}, "Pipeline rate_limiter must be a RateLimiter or None"),
        ({"timeout": "1s"}, "Pipeline timeout must be a Timeout, a number of seconds or None"),
        ({"deadline": True}, "Pipeline deadline must be a Deadline, a number of seconds"),
        ({"timeout": Deadline()}, "Pipeline timeout must be a Timeout"),
        (
            {"timeout": 0},
            "Pipeline timeout: Timeout seconds must be a finite number of seconds > 0",
        ),
        (
            {"deadline": -1.0},
            "Pipeline deadline: Deadline seconds must be a finite number of seconds > 0",
        ),
    ],
)
def test_a_wrong_part_is_a_config_error_naming_it(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Pipeline(**kwargs)


# -- from_dict ---------------------------------------------------------------

DESIGN_EXAMPLE = {
    "timeout": "10s",
    "retry": {"max_attempts": 4, "initial_delay": "200ms", "max_delay": "10s", "jitter": "full"},
    "circuit_breaker": {
        "failure_rate": 50,
        "window": 20,
        "min_calls": 10,
        "open_for": "30s",
        "half_open_calls": 3,
    },
}

EVERYTHING = {
    "fallback": {"status": "unknown"},
    "deadline": "30s",
    "retry": {
        "max_attempts": 3,
        "initial_delay": "100ms",
        "multiplier": 1.5,
        "max_delay": "2s",
        "jitter": "equal",
        "max_retry_after": "1m",
        "idempotent": False,
        "retry_rejections": True,
    },
    "retry_budget": {"ratio": 0.1, "min_per_second": 5, "ttl": "20s"},
    "hedge": {"delay": "150ms", "percentile": 95, "window": 50, "min_samples": 10, "max_hedges": 2},
    "adaptive_throttle": {"k": 1.5, "window": "2m", "min_requests": 20},
    "circuit_breaker": {
        "failure_rate": 25.5,
        "slow_call_rate": 80,
        "slow_call_duration": "2s",
        "window_type": "time",
        "window": "30s",
        "min_calls": 5,
        "open_for": "5s",
        "open_for_multiplier": 2,
        "max_open_for": "1m",
        "half_open_calls": 2,
        "max_wait_in_half_open": "10s",
    },
    "bulkhead": {"max_concurrent": 8, "max_waiting": 16, "max_wait": "50ms"},
    "rate_limit": {"rate": 20, "burst": 40, "max_wait": "1s", "initial_tokens": 10},
    "timeout": {"seconds": "2.5s"},
}


async def test_from_dict_builds_the_design_example(clock: FakeClock) -> None:
    pipeline = Pipeline.from_dict(DESIGN_EXAMPLE, name="payments", clock=clock)
    assert [type(p) for p in pipeline.policies] == [Retry, CircuitBreaker, Timeout]
    retry, timeout, breaker = pipeline.retry, pipeline.timeout, pipeline.breaker
    assert retry is not None
    assert timeout is not None
    assert breaker is not None
    assert (retry.max_attempts, retry.initial_delay, retry.max_delay, retry.jitter) == (
        4,
        0.2,
        10.0,
        "full",
    )
    assert timeout.seconds == 10.0
    assert [p.name for p in pipeline.policies] == [
        "payments.retry",
        "payments.circuit_breaker",
        "payments.timeout",
    ]
    assert all(p.clock is clock for p in pipeline.policies)
    assert pipeline.name == "payments"
    assert pipeline.config == {
        "timeout": {"seconds": 10.0},
        "retry": {"max_attempts": 4, "initial_delay": 0.2, "max_delay": 10.0, "jitter": "full"},
        "circuit_breaker": {
            "failure_rate": 50,
            "window": 20,
            "min_calls": 10,
            "open_for": 30.0,
            "half_open_calls": 3,
        },
    }


async def test_the_design_examples_breaker_opens_as_configured(clock: FakeClock) -> None:
    pipeline = Pipeline.from_dict(DESIGN_EXAMPLE, clock=clock)
    callee = Flaky(failures=1000)
    for _ in range(2):
        with pytest.raises(RetryExhaustedError):
            await clock.run(pipeline.call(callee))  # 4 attempts each
    # The 10th failed attempt (min_calls 10, 50%) opens it; the retry stops at the rejection.
    with pytest.raises(CircuitOpenError) as caught:
        await clock.run(pipeline.call(callee))
    assert callee.calls == 10
    assert pipeline.breaker is not None
    assert pipeline.breaker.state is CircuitState.OPEN
    assert caught.value.retry_after == pytest.approx(30.0, abs=0.5)


def test_from_dict_sets_every_configurable_part(clock: FakeClock) -> None:
    pipeline = Pipeline.from_dict(EVERYTHING, clock=clock)
    assert [type(p) for p in pipeline.policies] == [
        Fallback,
        Deadline,
        Retry,
        Hedge,
        AdaptiveThrottle,
        CircuitBreaker,
        Bulkhead,
        RateLimiter,
        Timeout,
    ]
    assert pipeline.budget is not None
    assert (pipeline.budget.ratio, pipeline.budget.min_per_second, pipeline.budget.ttl) == (
        0.1,
        5.0,
        20.0,
    )
    assert pipeline.retry is not None
    assert pipeline.retry.budget is pipeline.budget
    assert (pipeline.retry.max_retry_after, pipeline.retry.idempotent) == (60.0, False)
    assert pipeline.hedge is not None
    assert pipeline.hedge.budget is pipeline.budget
    assert (pipeline.hedge.delay, pipeline.hedge.percentile, pipeline.hedge.max_hedges) == (
        0.15,
        95.0,
        2,
    )
    assert pipeline.throttle is not None
    assert (pipeline.throttle.k, pipeline.throttle.window) == (1.5, 120.0)
    assert pipeline.bulkhead is not None
    assert (pipeline.bulkhead.max_concurrent, pipeline.bulkhead.max_wait) == (8, 0.05)
    assert pipeline.rate_limiter is not None
    assert (pipeline.rate_limiter.rate, pipeline.rate_limiter.burst) == (20.0, 40.0)
    assert pipeline.deadline is not None
    assert pipeline.deadline.seconds == 30.0
    assert pipeline.timeout is not None
    assert pipeline.timeout.seconds == 2.5
    assert pipeline.config is not None
    assert pipeline.config["circuit_breaker"]["window"] == 30
    assert pipeline.config["fallback"] == {"status": "unknown"}
    assert [p.name for p in pipeline.policies][:3] == ["fallback", "deadline", "retry"]


async def test_from_dict_fallback_answers_with_the_value(clock: FakeClock) -> None:
    pipeline = Pipeline.from_dict({"fallback": {"status": "unknown"}}, clock=clock)
    answer: object = await pipeline.call(Flaky(failures=1))
    assert answer == {"status": "unknown"}


@pytest.mark.parametrize("config", [DESIGN_EXAMPLE, EVERYTHING, {}])
def test_from_dict_round_trips_through_config(config: dict[str, Any]) -> None:
    first = Pipeline.from_dict(config)
    assert first.config is not None
    second = Pipeline.from_dict(first.config)
    assert second.config == first.config
    assert [repr(p) for p in second.policies] == [repr(p) for p in first.policies]


def test_a_pipeline_built_in_code_has_no_config() -> None:
    assert Pipeline(timeout=1.0).config is None


def test_optional_settings_take_null() -> None:
    pipeline = Pipeline.from_dict({"bulkhead": {"max_waiting": None}, "hedge": {"delay": 1}})
    assert pipeline.bulkhead is not None
    assert pipeline.bulkhead.max_waiting is None


def test_every_listed_duration_is_a_constructor_argument() -> None:
    for kind, names in _DURATIONS.items():
        parameters = inspect.signature(kind.__init__).parameters
        assert names <= parameters.keys(), kind
    assert {kind for _, kind in _SECTIONS.values()} - {Fallback} == set(_DURATIONS)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"circuit_breaker": {"open_fr": "30s"}},
            r"'circuit_breaker.open_fr'.*did you mean 'open_for'\?",
        ),
        ({"retyr": {}}, r"unknown key 'retyr'.*did you mean 'retry'\?"),
        ({"zzz": 1}, r"unknown key 'zzz': expected a pipeline part: fallback, deadline"),
        ({"retry": {"qqq": 1}}, r"unknown key 'retry.qqq': expected a Retry setting: max_attempts"),
        ({"retry": {"retry_on": "ValueError"}}, r"retry.retry_on: cannot be set from config"),
        ({"retry": {"name": "x"}}, r"unknown key 'retry.name'"),
        ({"bulkhead": 5}, r"bulkhead: expected a mapping of Bulkhead settings \(max_concurrent"),
        (
            {"retry": {"max_attempts": "four"}},
            r"retry.max_attempts: expected an integer, got 'four'",
        ),
        ({"retry": {"max_attempts": 2.5}}, r"retry.max_attempts: expected an integer, got 2.5"),
        ({"retry": {"max_attempts": True}}, r"retry.max_attempts: expected an integer, got True"),
        ({"retry": {"max_attempts": None}}, r"retry.max_attempts: expected an integer, got null"),
        ({"bulkhead": {"max_waiting": "many"}}, r"max_waiting: expected an integer or null"),
        ({"retry": {"multiplier": "2x"}}, r"retry.multiplier: expected a number, got '2x'"),
        ({"retry": {"idempotent": "yes"}}, r"retry.idempotent: expected true or false"),
        ({"retry": {"jitter": 3}}, r"retry.jitter: expected a string, got 3"),
        ({"retry": {"initial_delay": "soon"}}, r"retry.initial_delay: expected a duration like"),
        ({"retry": {"initial_delay": -1}}, r"retry.initial_delay: expected a duration"),
        ({"timeout": "10"}, r"timeout.seconds: expected a duration like '250ms'"),
        ({"timeout": {"secs": 1}}, r"'timeout.secs'.*did you mean 'seconds'\?"),
        (
            {"deadline": 0},
            r"deadline.seconds: Deadline seconds must be a finite number of seconds > 0",
        ),
        (
            {"circuit_breaker": {"window_type": "tim"}},
            r"circuit_breaker.window_type: expected one of 'count', 'time', got 'tim'; did you mean 'time'\?",
        ),
        (
            {"circuit_breaker": {"window_type": "sliding"}},
            r"expected one of 'count', 'time', got 'sliding'$",
        ),
        (
            {"circuit_breaker": {"window_type": "time", "window": "1.5s"}},
            r"circuit_breaker.window: a time window is whole seconds, got '1.5s'",
        ),
        ({"circuit_breaker": {"window": "30s"}}, r"circuit_breaker.window: expected an integer"),
        ({"retry": {"max_attempts": 0}}, r"retry.max_attempts: Retry max_attempts must be"),
        ({"hedge": {"max_hedges": 0}}, r"hedge.max_hedges: Hedge max_hedges must be an integer"),
        ({"rate_limit": {"rate": -1}}, r"rate_limit.rate: "),
        (
            {"retry": {"initial_delay": "2s", "max_delay": "1s"}},
            r"^retry: Retry max_delay must be >= initial_delay \(2.0\), got 1.0",
        ),
        ({"hedge": {"delay": None}}, r"^hedge: Hedge needs a delay"),
    ],
)
def test_every_config_mistake_names_the_dotted_key_and_the_expectation(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_dict(config)


def test_a_config_that_is_not_a_mapping_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pipeline config must be a mapping, got"):
        Pipeline.from_dict(["retry"])  # type: ignore[arg-type]


def test_a_budget_without_a_retry_or_hedge_to_spend_it_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Pipeline budget must be given with a retry or a hedge"):
        Pipeline(budget=RetryBudget(), breaker=CircuitBreaker())


def test_replace_shares_the_parts_and_swaps_only_those_given() -> None:
    pipeline = Pipeline.from_dict({"retry": {"max_attempts": 2}, "circuit_breaker": {}}, name="p")
    limiter = RateLimiter(rate=5)
    replaced = pipeline.replace(rate_limiter=limiter, breaker=None)
    assert replaced.retry is pipeline.retry
    assert replaced.rate_limiter is limiter
    assert replaced.breaker is None
    assert pipeline.breaker is not None  # the original stays as it was
    assert pipeline.rate_limiter is None
    assert (replaced.name, replaced.clock, replaced.config) == (
        "p",
        pipeline.clock,
        pipeline.config,
    )
    with pytest.raises(ConfigError, match=r"Pipeline\.replace circuit_breaker must be one of"):
        pipeline.replace(circuit_breaker=None)
