"""Bulkhead: behaviour 21 (reject at once, FIFO waiters with a timeout, no slot leaks)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from interlink.core.errors import BulkheadFullError, ConfigError
from interlink.resilience import Bulkhead, ResilienceEvent
from interlink.testing import FakeClock


class Gate:
    """A call that runs until the test opens its gate."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._gates: dict[str, asyncio.Event] = {}

    async def work(self, name: str) -> str:
        self.started.append(name)
        gate = self._gates.setdefault(name, asyncio.Event())
        await gate.wait()
        return name

    def open(self, name: str) -> None:
        self._gates.setdefault(name, asyncio.Event()).set()


async def test_with_no_wait_call_n_plus_one_is_rejected_at_once(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=3, clock=clock)
    gate = Gate()
    running = [asyncio.create_task(bulkhead.call(gate.work, f"c{i}")) for i in range(3)]
    await clock.settle()
    assert bulkhead.available == 0
    assert bulkhead.in_use == 3

    with pytest.raises(BulkheadFullError) as caught:
        await bulkhead.call(gate.work, "extra")

    assert clock.monotonic() == 1000.0
    assert "extra" not in gate.started
    assert caught.value.retry_after is None
    assert caught.value.policy == "bulkhead"
    assert "max_wait=0" in str(caught.value)
    for i in range(3):
        gate.open(f"c{i}")
    assert await asyncio.gather(*running) == ["c0", "c1", "c2"]
    assert bulkhead.available == 3


async def test_waiters_are_served_in_arrival_order(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=math.inf, clock=clock)
    gate = Gate()
    first = asyncio.create_task(bulkhead.call(gate.work, "first"))
    await clock.settle()
    waiters = []
    for name in ["w1", "w2", "w3", "w4"]:
        waiters.append(asyncio.create_task(bulkhead.call(gate.work, name)))
        await clock.settle()
    assert bulkhead.waiting == 4
    assert clock.pending == 0  # an unbounded wait needs no timer

    for name in ["first", "w1", "w2", "w3"]:
        gate.open(name)
        await clock.settle()
    gate.open("w4")
    await asyncio.gather(first, *waiters)
    assert gate.started == ["first", "w1", "w2", "w3", "w4"]
    assert bulkhead.available == 1
    assert bulkhead.waiting == 0


async def test_waiters_time_out_after_max_wait_in_order(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=2, max_wait=0.1, clock=clock)
    gate = Gate()
    outcomes: list[tuple[str, str, float]] = []

    async def attempt(name: str) -> None:
        try:
            await bulkhead.call(gate.work, name)
            outcomes.append((name, "ran", clock.monotonic()))
        except BulkheadFullError:
            outcomes.append((name, "rejected", clock.monotonic()))

    holders = [asyncio.create_task(attempt(n)) for n in ("h1", "h2")]
    waiters = []
    for name in ("a", "b", "c"):
        waiters.append(asyncio.create_task(attempt(name)))
        await clock.advance(0.02)  # a queues at +0, b at +0.02, c at +0.04
    assert bulkhead.waiting == 3

    await clock.advance(0.01)  # +0.07: a slot frees up and goes to the oldest waiter
    gate.open("h1")
    await clock.settle()
    assert gate.started == ["h1", "h2", "a"]

    await clock.advance(0.2)
    gate.open("h2")
    gate.open("a")
    await asyncio.gather(*holders, *waiters)
    rejected = [(name, when) for name, what, when in outcomes if what == "rejected"]
    assert [name for name, _ in rejected] == ["b", "c"]
    assert rejected[0][1] == pytest.approx(1000.12)
    assert rejected[1][1] == pytest.approx(1000.14)
    assert bulkhead.available == 2
    assert bulkhead.waiting == 0
    assert clock.pending == 0


async def test_a_waiter_times_out_on_the_fake_clock_not_before(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=0.1, clock=clock)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    waiter = asyncio.create_task(bulkhead.call(gate.work, "waiter"))
    await clock.advance(0.0999)
    assert not waiter.done()
    await clock.advance(0.0001)
    with pytest.raises(BulkheadFullError, match=r"within 0\.100s"):
        await waiter
    gate.open("holder")
    await holder
    assert gate.started == ["holder"]


async def test_a_cancelled_waiter_leaves_the_queue_and_never_takes_a_slot(
    clock: FakeClock,
) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=5.0, clock=clock)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    await clock.settle()
    doomed = asyncio.create_task(bulkhead.call(gate.work, "doomed"))
    patient = asyncio.create_task(bulkhead.call(gate.work, "patient"))
    await clock.settle()
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert bulkhead.waiting == 1

    gate.open("holder")
    await clock.settle()
    assert gate.started == ["holder", "patient"]
    gate.open("patient")
    await asyncio.gather(holder, patient)
    assert bulkhead.available == 1
    assert clock.pending == 0


async def test_a_cancellation_arriving_with_the_hand_off_passes_the_slot_on(
    clock: FakeClock,
) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=math.inf, clock=clock)
    gate = Gate()
    waiter_tasks: dict[str, asyncio.Task[str]] = {}

    async def finish_and_cancel_the_first_waiter() -> str:
        # Queued before the release below hands the slot to "unlucky", so
        # "unlucky" wakes up cancelled while owning the slot.
        asyncio.get_running_loop().call_soon(waiter_tasks["unlucky"].cancel)
        return "holder"

    release = asyncio.Event()

    async def holder_body() -> str:
        await release.wait()
        return await finish_and_cancel_the_first_waiter()

    holder = asyncio.create_task(bulkhead.call(holder_body))
    await clock.settle()
    waiter_tasks["unlucky"] = asyncio.create_task(bulkhead.call(gate.work, "unlucky"))
    waiter_tasks["next"] = asyncio.create_task(bulkhead.call(gate.work, "next"))
    await clock.settle()

    release.set()
    assert await holder == "holder"
    with pytest.raises(asyncio.CancelledError):
        await waiter_tasks["unlucky"]
    await clock.settle()
    assert gate.started == ["next"]
    assert bulkhead.in_use == 1
    gate.open("next")
    await waiter_tasks["next"]
    assert bulkhead.available == 1
    assert bulkhead.waiting == 0


class RacingClock(FakeClock):
    """A fake clock whose timers also cancel a victim task in the same instant."""

    victim: asyncio.Task[str] | None = None
    cancel_first = False

    def call_later(self, delay: float, callback: Callable[[], object]) -> Any:
        def both() -> None:
            assert self.victim is not None
            if self.cancel_first:
                self.victim.cancel()
                callback()
            else:
                callback()
                self.victim.cancel()

        return super().call_later(delay, both)


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_a_waiter_cancelled_as_its_wait_runs_out_leaves_cleanly(cancel_first: bool) -> None:
    clock = RacingClock()
    clock.cancel_first = cancel_first
    bulkhead = Bulkhead(max_concurrent=1, max_wait=0.1, clock=clock)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    await clock.settle()
    clock.victim = asyncio.create_task(bulkhead.call(gate.work, "victim"))
    await clock.advance(0.1)
    with pytest.raises(asyncio.CancelledError):
        await clock.victim
    assert bulkhead.waiting == 0
    gate.open("holder")
    await holder
    assert gate.started == ["holder"]
    assert bulkhead.available == 1


async def test_ten_thousand_random_cancellations_leak_no_slot(clock: FakeClock) -> None:
    rng = random.Random(21)
    bulkhead = Bulkhead(max_concurrent=5, max_wait=0.05, clock=clock)
    running = peak = 0

    async def work(seconds: float) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await clock.sleep(seconds)
        finally:
            running -= 1

    tasks: list[asyncio.Task[None]] = []
    for i in range(10_000):
        tasks.append(asyncio.create_task(bulkhead.call(work, rng.uniform(0.0, 0.03))))
        if rng.random() < 0.5:
            rng.choice(tasks[-40:]).cancel()
        if i % 5 == 0:
            await clock.advance(rng.uniform(0.0, 0.01))
    await clock.advance(1.0)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    kinds = {type(o).__name__ for o in outcomes}
    assert kinds == {"NoneType", "CancelledError", "BulkheadFullError"}
    assert peak == 5
    assert bulkhead.available == 5
    assert bulkhead.in_use == 0
    assert bulkhead.waiting == 0
    assert clock.pending == 0


async def test_a_failing_call_frees_its_slot(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, clock=clock)

    async def boom() -> None:
        raise RuntimeError("upstream down")

    for _ in range(3):
        with pytest.raises(RuntimeError):
            await bulkhead.call(boom)
    assert bulkhead.available == 1


async def test_max_waiting_bounds_the_queue(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_waiting=2, max_wait=1.0, clock=clock)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    queued = [asyncio.create_task(bulkhead.call(gate.work, n)) for n in ("q1", "q2")]
    await clock.settle()
    with pytest.raises(BulkheadFullError, match="2 callers already waiting"):
        await bulkhead.call(gate.work, "q3")
    for name in ("holder", "q1", "q2"):
        gate.open(name)
    await asyncio.gather(holder, *queued)
    assert gate.started == ["holder", "q1", "q2"]


async def test_a_newcomer_does_not_overtake_a_waiter(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=1.0, clock=clock)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    waiter = asyncio.create_task(bulkhead.call(gate.work, "waiter"))
    await clock.settle()
    gate.open("holder")
    await holder
    # The slot is promised to "waiter" even before it runs again.
    newcomer = asyncio.create_task(bulkhead.call(gate.work, "newcomer"))
    await clock.settle()
    assert gate.started == ["holder", "waiter"]
    gate.open("waiter")
    gate.open("newcomer")
    await asyncio.gather(waiter, newcomer)
    assert gate.started == ["holder", "waiter", "newcomer"]


async def test_many_timed_out_waiters_do_not_pile_up(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=0.01, clock=clock)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    await clock.settle()
    doomed = [asyncio.create_task(bulkhead.call(gate.work, f"d{i}")) for i in range(200)]
    await clock.advance(0.01)
    assert all(isinstance(t.exception(), BulkheadFullError) for t in doomed)
    assert bulkhead.waiting == 0
    late = asyncio.create_task(bulkhead.call(gate.work, "late"))
    await clock.settle()
    gate.open("holder")
    await holder
    await clock.settle()
    assert gate.started == ["holder", "late"]
    gate.open("late")
    await late
    assert bulkhead.available == 1


async def test_it_emits_queued_and_rejected_events(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_wait=0.1, name="db", clock=clock)
    seen: list[ResilienceEvent] = []
    bulkhead.events.subscribe(seen.append)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate.work, "holder"))
    waiter = asyncio.create_task(bulkhead.call(gate.work, "waiter"))
    await clock.advance(0.1)
    with pytest.raises(BulkheadFullError):
        await waiter
    gate.open("holder")
    await holder
    assert [(e.kind, e.policy, dict(e.attributes)) for e in seen] == [
        ("bulkhead.queued", "db", {"waiting": 1}),
        ("bulkhead.rejected", "db", {"reason": "timeout", "in_use": 1}),
    ]

    seen.clear()
    full = Bulkhead(max_concurrent=1, max_waiting=0, max_wait=1.0, clock=clock)
    full.events.subscribe(seen.append)
    holder = asyncio.create_task(full.call(gate.work, "h2"))
    await clock.settle()
    with pytest.raises(BulkheadFullError):
        await full.call(gate.work, "x")
    gate.open("h2")
    await holder
    assert [e.attributes["reason"] for e in seen] == ["queue_full"]


async def test_it_works_as_a_decorator_and_has_a_readable_repr(clock: FakeClock) -> None:
    bulkhead = Bulkhead(max_concurrent=2, name="payments", clock=clock)

    @bulkhead
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42
    assert repr(bulkhead) == "Bulkhead(max_concurrent=2, in_use=0, waiting=0, name='payments')"


def test_defaults_follow_resilience4j() -> None:
    bulkhead = Bulkhead()
    assert (bulkhead.max_concurrent, bulkhead.max_waiting, bulkhead.max_wait) == (25, None, 0.0)
    assert bulkhead.available == 25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1, got 0"),
        ({"max_concurrent": -3}, "max_concurrent must be an integer >= 1"),
        ({"max_concurrent": 2.5}, "max_concurrent must be an integer >= 1, got 2.5"),
        ({"max_concurrent": True}, "max_concurrent must be an integer"),
        ({"max_waiting": -1}, "max_waiting must be an integer >= 0, got -1"),
        ({"max_waiting": 1.5}, "max_waiting must be an integer >= 0"),
        ({"max_waiting": False}, "max_waiting must be an integer >= 0"),
        ({"max_wait": -0.1}, "max_wait must be a number of seconds >= 0"),
        ({"max_wait": math.nan}, "max_wait must be a number of seconds >= 0"),
        ({"max_wait": "1s"}, "max_wait must be a number of seconds >= 0"),
        ({"max_wait": True}, "max_wait must be a number"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Bulkhead(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert str(caught.value).startswith("Bulkhead ")
