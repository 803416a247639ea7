from __future__ import annotations

import asyncio

import pytest

from interlink.core import Clock
from interlink.testing import FakeClock


def test_a_fake_clock_is_a_clock_and_starts_still(clock: FakeClock) -> None:
    assert isinstance(clock, Clock)
    assert clock.monotonic() == 1000.0
    assert clock.pending == 0
    assert clock.next_deadline() is None
    assert "pending=0" in repr(clock)


async def test_sleep_returns_only_when_time_is_advanced_far_enough(clock: FakeClock) -> None:
    task = asyncio.create_task(clock.sleep(5))
    await clock.wait_for_sleepers(1)
    await clock.advance(4.999)
    assert not task.done()
    await clock.advance(0.001)
    assert task.done()
    assert clock.monotonic() == pytest.approx(1005.0)


async def test_timers_fire_in_time_order_and_see_their_own_time(clock: FakeClock) -> None:
    seen: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        seen.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("c", 3), ("a", 1), ("b", 2)]]
    await clock.advance(10)
    await asyncio.gather(*tasks)
    assert seen == [("a", 1001.0), ("b", 1002.0), ("c", 1003.0)]
    assert clock.monotonic() == 1010.0


async def test_a_cancelled_sleep_leaves_no_timer_behind(clock: FakeClock) -> None:
    task = asyncio.create_task(clock.sleep(5))
    await clock.wait_for_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0


async def test_zero_sleep_only_yields(clock: FakeClock) -> None:
    await clock.sleep(0)
    assert clock.monotonic() == 1000.0


async def test_call_later_runs_a_callback_at_its_time_unless_cancelled(clock: FakeClock) -> None:
    fired: list[float] = []
    clock.call_later(2, lambda: fired.append(clock.monotonic()))
    cancelled = clock.call_later(1, lambda: fired.append(-1))
    cancelled.cancel()
    assert clock.next_deadline() == 1002.0
    await clock.advance(5)
    assert fired == [1002.0]


async def test_shifting_the_wall_clock_leaves_monotonic_time_alone(clock: FakeClock) -> None:
    wall, mono = clock.wall(), clock.monotonic()
    clock.shift_wall(-3600)
    assert clock.wall() == wall - 3600
    assert clock.monotonic() == mono


async def test_time_never_goes_back(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        await clock.advance(-1)


async def test_run_jumps_time_to_each_timer_until_the_work_is_done(clock: FakeClock) -> None:
    async def slow() -> float:
        await clock.sleep(60)
        await clock.sleep(3600)
        return clock.monotonic()

    assert await clock.run(slow()) == 1000.0 + 3660.0


async def test_run_refuses_work_that_waits_on_something_else(clock: FakeClock) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(RuntimeError, match="other than the fake clock"):
        await clock.run(never)
    assert never.cancelled()


async def test_wait_for_sleepers_fails_fast_instead_of_hanging(clock: FakeClock) -> None:
    with pytest.raises(AssertionError, match="expected 1 sleepers"):
        await clock.wait_for_sleepers(1)
