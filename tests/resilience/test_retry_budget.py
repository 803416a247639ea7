"""RetryBudget: Finagle-style retry budget, alone and shared by Retry policies (behaviour 16)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import pytest

from interlink.core.errors import ConfigError, RetryExhaustedError
from interlink.resilience import (
    BudgetStore,
    MemoryBudgetStore,
    ResilienceEvent,
    Retry,
    RetryBudget,
)
from interlink.testing import FakeClock


class Boom(Exception):
    pass


async def always_fails() -> None:
    raise Boom("down")


def record(hub_owner: Retry | RetryBudget) -> list[ResilienceEvent]:
    events: list[ResilienceEvent] = []
    hub_owner.events.subscribe(events.append)
    return events


def instant_retry(clock: FakeClock, budget: RetryBudget, **options: Any) -> Retry:
    """A retry with no backoff, so that traffic rates are set by the test alone."""
    options.setdefault("max_attempts", 3)
    return Retry(
        initial_delay=0.0, max_delay=0.0, jitter="none", budget=budget, clock=clock, **options
    )


# -- behaviour 16 -------------------------------------------------------------------------


async def test_at_full_failure_retries_stay_within_ratio_plus_minimum(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)  # 20 % + 10/s, 10 s window
    retry = instant_retry(clock, budget)
    budget_events = record(budget)
    attempts = 0

    async def fails() -> None:
        nonlocal attempts
        attempts += 1
        raise Boom("down")

    seconds, per_second = 30, 1_000
    requests = seconds * per_second
    for _ in range(requests):
        with suppress(Boom, RetryExhaustedError):
            await retry.call(fails)
        await clock.advance(1 / per_second)
    retries = attempts - requests
    # Without the budget: 2 retries per request, 60,000. With it: 20 % plus the floor.
    assert retries <= 0.2 * requests + budget.min_per_second * seconds
    assert retries >= 0.2 * requests  # the budget is spent, not merely refused
    assert budget_events
    assert budget_events[0].kind == "retry_budget.exhausted"
    assert set(budget_events[0].attributes) == {"requests", "retries", "ratio", "min_per_second"}


async def test_at_low_failure_rates_the_budget_refuses_nothing(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    retry = instant_retry(clock, budget)
    budget_events = record(budget)
    calls = 0

    async def fails_one_in_twenty() -> str:
        nonlocal calls
        calls += 1
        if calls % 20 == 0:
            raise Boom("blip")
        return "ok"

    for _ in range(20_000):
        assert await retry.call(fails_one_in_twenty) == "ok"
        await clock.advance(0.001)
    assert budget_events == []
    assert calls == 20_000 + 20_000 // 19  # every blip was retried once


async def test_with_no_failures_the_budget_only_counts_requests(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    retry = instant_retry(clock, budget)

    async def ok() -> str:
        return "ok"

    for _ in range(500):
        assert await retry.call(ok) == "ok"
    assert (budget.requests, budget.retries) == (500, 0)
    assert budget.available == 0.2 * 500 + 10 * 10


async def test_one_budget_is_shared_by_two_retry_policies(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.5, ttl=10.0, clock=clock)  # 5 retries
    first = instant_retry(clock, budget, max_attempts=10)
    second = instant_retry(clock, budget, max_attempts=10)
    second_events = record(second)
    budget_events = record(budget)
    calls = {"first": 0, "second": 0}

    async def fails(which: str) -> None:
        calls[which] += 1
        raise Boom(which)

    # The budget refuses the 6th retry: the last error itself comes back, not wrapped.
    with pytest.raises(Boom, match="first"):
        await first.call(fails, "first")
    assert calls["first"] == 6
    with pytest.raises(Boom, match="second"):
        await second.call(fails, "second")
    assert calls["second"] == 1
    assert [e.kind for e in budget_events] == ["retry_budget.exhausted"] * 2
    assert second_events[-1].kind == "retry.gave_up"
    assert second_events[-1].attributes["reason"] == "budget"
    # Spent retries expire after ttl.
    await clock.advance(10.0)
    with pytest.raises(Boom):
        await second.call(fails, "second")
    assert calls["second"] == 7


async def test_a_refused_result_retry_returns_the_result(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock)
    retry = instant_retry(clock, budget, retry_on_result=lambda result: result == "busy")

    async def busy() -> str:
        return "busy"

    assert await retry.call(busy) == "busy"


async def test_cancelled_calls_spend_no_budget(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    retry = Retry(budget=budget, clock=clock)
    task = asyncio.ensure_future(retry.call(asyncio.Event().wait))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (budget.requests, budget.retries) == (1, 0)


# -- the window -----------------------------------------------------------------------------


async def test_deposits_expire_after_ttl(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=10.0, clock=clock)
    clock_start = clock.monotonic()
    for _ in range(10):
        budget.record_request()
    assert budget.available == 5
    await clock.advance(9.5)
    assert budget.available == 5
    await clock.advance(clock_start + 10.0 - clock.monotonic())
    assert budget.available == 0
    assert budget.requests == 0


async def test_withdrawals_expire_after_ttl_too(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0, clock=clock)  # 1 retry
    assert budget.try_spend() is True
    assert budget.try_spend() is False
    await clock.advance(5.0)
    assert budget.try_spend() is False
    await clock.advance(5.0)
    assert budget.retries == 0
    assert budget.try_spend() is True


async def test_the_window_slides_bucket_by_bucket(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, ttl=10.0, clock=clock)
    for _ in range(10):  # one request per second, 10 s
        budget.record_request()
        await clock.advance(1.0)
    assert budget.requests == 9  # the first second has slid out
    await clock.advance(3.0)
    assert budget.requests == 6
    await clock.advance(100.0)
    assert budget.requests == 0


def test_ratio_is_exact_despite_floating_point() -> None:
    store = MemoryBudgetStore(10.0)
    for _ in range(100):
        store.deposit(0.0)
    granted = sum(store.try_withdraw(0.0, 0.29, 0.0) for _ in range(40))
    assert granted == 29
    assert store.counts(0.0) == (100, 29)


def test_a_clock_that_goes_back_counts_into_the_newest_bucket() -> None:
    store = MemoryBudgetStore(10.0)
    store.deposit(100.0)
    store.deposit(99.0)
    assert store.counts(100.0) == (2, 0)
    assert store.counts(109.5) == (2, 0)
    assert store.counts(110.0) == (0, 0)


def test_memory_store_slices_set_the_granularity() -> None:
    store = MemoryBudgetStore(10.0, slices=2)
    store.deposit(0.0)
    store.deposit(6.0)
    assert store.counts(9.9) == (2, 0)
    assert store.counts(10.0) == (1, 0)  # the 0-5 s bucket expired whole
    assert repr(store) == "MemoryBudgetStore(ttl=10.0, slices=2)"


# -- a pluggable store --------------------------------------------------------------------


class CountingStore:
    """A stand-in for a shared backend: delegates, and counts what the budget asked."""

    def __init__(self, ttl: float) -> None:
        self.inner = MemoryBudgetStore(ttl)
        self.asked: list[str] = []

    @property
    def ttl(self) -> float:
        return self.inner.ttl

    def deposit(self, now: float) -> None:
        self.asked.append("deposit")
        self.inner.deposit(now)

    def try_withdraw(self, now: float, ratio: float, reserve: float) -> bool:
        self.asked.append("withdraw")
        return self.inner.try_withdraw(now, ratio, reserve)

    def counts(self, now: float) -> tuple[int, int]:
        return self.inner.counts(now)


async def test_a_custom_store_plugs_in_without_changing_the_policies(clock: FakeClock) -> None:
    store = CountingStore(10.0)
    assert isinstance(store, BudgetStore)
    budget = RetryBudget(store=store, clock=clock)
    retry = instant_retry(clock, budget)
    with pytest.raises(RetryExhaustedError):
        await retry.call(always_fails)
    assert store.asked == ["deposit", "withdraw", "withdraw"]


async def test_budget_call_records_a_request(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)

    async def ok(value: int) -> int:
        return value

    assert await budget.call(ok, 7) == 7
    assert budget.requests == 1


def test_budget_defaults_follow_finagle() -> None:
    budget = RetryBudget()
    assert (budget.ratio, budget.min_per_second, budget.ttl) == (0.2, 10.0, 10.0)
    assert budget.name == "retry_budget"
    assert repr(budget) == (
        "RetryBudget(ratio=0.2, min_per_second=10.0, ttl=10.0, name='retry_budget')"
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": float("inf")}, "ratio"),
        ({"ratio": "20%"}, "ratio"),
        ({"ratio": True}, "ratio"),
        ({"min_per_second": -1.0}, "min_per_second"),
        ({"ttl": 0.0}, "ttl"),
        ({"ttl": -5.0}, "ttl"),
        ({"store": object()}, "store"),
        ({"store": MemoryBudgetStore(5.0)}, "ttl"),
    ],
)
def test_bad_budget_arguments_raise_config_error_naming_them(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        RetryBudget(**options)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"slices": 0}, "slices"), ({"slices": 2.0}, "slices"), ({"ttl": 0.0}, "ttl")],
)
def test_bad_store_arguments_raise_config_error_naming_them(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        MemoryBudgetStore(**options)
