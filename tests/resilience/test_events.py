from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import pytest

from interlink.resilience import EVENTS, Policy, ResilienceEvent, subscribe
from interlink.testing import FakeClock

P = ParamSpec("P")
T = TypeVar("T")


class Echo(Policy):
    kind = "echo"

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._emit("called", args=len(args))
        return await fn(*args, **kwargs)


async def test_a_policy_listener_sees_the_events_of_that_policy_only(clock: FakeClock) -> None:
    one, two = Echo(name="one", clock=clock), Echo(name="two", clock=clock)
    seen: list[ResilienceEvent] = []
    unsubscribe = one.events.subscribe(seen.append)

    async def work(x: int) -> int:
        return x * 2

    assert await one.call(work, 21) == 42
    assert await two.call(work, 1) == 2
    assert seen == [ResilienceEvent("echo.called", "one", 1000.0, {"args": 1})]
    unsubscribe()
    await one.call(work, 1)
    assert len(seen) == 1


async def test_a_global_listener_sees_every_policy() -> None:
    seen: list[str] = []
    unsubscribe = subscribe(lambda e: seen.append(e.policy))
    try:

        async def work() -> None:
            return None

        await Echo(name="a").call(work)
        await Echo(name="b").call(work)
    finally:
        unsubscribe()
    assert seen == ["a", "b"]
    assert not EVENTS.active


async def test_a_failing_listener_is_logged_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = Echo()
    later: list[Any] = []

    def broken(event: ResilienceEvent) -> None:
        raise RuntimeError("listener bug")

    policy.events.subscribe(broken)
    policy.events.subscribe(later.append)

    async def work() -> str:
        return "done"

    with caplog.at_level(logging.ERROR, logger="interlink.resilience"):
        assert await policy.call(work) == "done"
    assert "echo.called" in caplog.text
    assert len(later) == 1


async def test_nobody_listening_means_no_event_is_built() -> None:
    policy = Echo()
    assert not policy.events.active

    async def work() -> int:
        return 1

    assert await policy.call(work) == 1


async def test_a_policy_decorates_an_async_function_keeping_its_name() -> None:
    policy = Echo(name="deco")

    @policy
    async def fetch(order_id: str) -> str:
        """Fetch an order."""
        return f"order {order_id}"

    assert await fetch("42") == "order 42"
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch an order."
    assert repr(policy) == "Echo(name='deco')"


async def test_activity_follows_subscriptions_down_to_every_policy() -> None:
    policy = Echo()
    assert not policy.events.active
    unsubscribe = subscribe(lambda e: None)
    try:
        assert policy.events.active
        assert Echo().events.active  # a policy made while someone listens
    finally:
        unsubscribe()
    assert not policy.events.active
    stop = policy.events.subscribe(lambda e: None)
    assert policy.events.active
    assert not EVENTS.active
    stop()
    assert not policy.events.active
