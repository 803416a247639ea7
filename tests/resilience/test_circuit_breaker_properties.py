"""CircuitBreaker properties under arbitrary interleavings (hypothesis).

A rule-based state machine starts calls, finishes them (success, failure,
ignored error), cancels them, moves time, reads the state and flips manual
states, in any order hypothesis finds. After every step it checks what a
user relies on: probes in flight never exceed ``half_open_calls``, the state
moves only along legal edges with exactly one event per move, a call that
finishes after the state moved on moves nothing, a CLOSED
breaker with fewer than ``min_calls`` buffered never opens, and OPEN never
ends before its open period (at least ``open_for``) on the monotonic clock.
Model-based tests then pin the window arithmetic against a plain list.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from random import Random

from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from interlink.core.errors import CircuitForcedOpenError, CircuitOpenError
from interlink.resilience import CircuitBreaker, CircuitState, ResilienceEvent
from interlink.resilience._breaker_state import CountWindow, TimeWindow
from interlink.testing import FakeClock

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED
METRICS_ONLY = CircuitState.METRICS_ONLY

OPEN_FOR = 5.0
MAX_OPEN_FOR = 20.0
HALF_OPEN_CALLS = 2
MIN_CALLS = 3
WINDOW = 4

AUTOMATIC_EDGES = {
    (CLOSED, OPEN): {"failure_rate", "slow_call_rate"},
    (OPEN, HALF_OPEN): {"open_period_elapsed"},
    (HALF_OPEN, OPEN): {"probes_failed", "probes_slow", "half_open_timeout"},
    (HALF_OPEN, CLOSED): {"probes_succeeded"},
}
MANUAL_TARGETS = {FORCED_OPEN, DISABLED, METRICS_ONLY, CLOSED}


class Boom(Exception):
    """An upstream failure."""


class Ignored(Exception):
    """An error the breaker ignores."""


class Call:
    """One call in flight: the test decides its outcome through ``gate``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.gate: asyncio.Future[str] = loop.create_future()
        self.task: asyncio.Task[str] | None = None
        self.probe_generation: int | None = None
        self.generation = -1


class BreakerMachine(RuleBasedStateMachine):
    window_type = "count"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.events: list[ResilienceEvent] = []
        self.checked = 0
        self.model = CLOSED
        self.opened_at = math.nan
        self.open_period = math.nan
        self.calls: list[Call] = []
        self.tasks: list[asyncio.Task[str]] = []
        self.probes_running: dict[int, int] = {}
        self.peak_probes = 0
        self.manual_budget = 3

    @initialize(seed=st.integers(0, 2**16))
    def build(self, seed: int) -> None:
        self.breaker = CircuitBreaker(
            window_type=self.window_type,  # type: ignore[arg-type]
            window=WINDOW,
            min_calls=MIN_CALLS,
            failure_rate=50.0,
            slow_call_rate=75.0,
            slow_call_duration=2.0,
            open_for=OPEN_FOR,
            open_for_multiplier=2.0,
            max_open_for=MAX_OPEN_FOR,
            half_open_calls=HALF_OPEN_CALLS,
            max_wait_in_half_open=15.0,
            ignore_on=Ignored,
            random=Random(seed),
            clock=self.clock,
        )
        self.breaker.events.subscribe(self.events.append)

    def settle(self) -> None:
        self.loop.run_until_complete(self.clock.settle())

    async def work(self, call: Call) -> str:
        view = self.breaker.store.view()
        call.generation = view.generation
        if view.state is HALF_OPEN:
            call.probe_generation = view.generation
            running = self.probes_running.get(view.generation, 0) + 1
            self.probes_running[view.generation] = running
            self.peak_probes = max(self.peak_probes, running)
        try:
            outcome = await call.gate
        finally:
            if call.probe_generation is not None:
                self.probes_running[call.probe_generation] -= 1
        if outcome == "fail":
            raise Boom
        if outcome == "ignored":
            raise Ignored
        return "ok"

    # -- rules ------------------------------------------------------------
    # Manual states reset everything, so a run gets only a few of them; the
    # rest of the steps drive the automatic edges (open, half-open, decide).
    @rule(count=st.integers(1, 4))
    def start_calls(self, count: int) -> None:
        for _ in range(count):
            self.start_call()

    def start_call(self) -> None:
        call = Call(self.loop)
        call.task = self.loop.create_task(self.breaker.call(self.work, call))
        self.tasks.append(call.task)
        self.settle()
        if not call.task.done():
            self.calls.append(call)
            return
        error = call.task.exception()
        assert isinstance(error, CircuitOpenError), error
        self.check_events()
        # A rejection comes only from a state that rejects, and says when to come back.
        if self.model is FORCED_OPEN:
            assert isinstance(error, CircuitForcedOpenError)
        else:
            assert self.model in (OPEN, HALF_OPEN)
            assert error.retry_after is not None
            assert error.retry_after > 0

    @rule(pick=st.integers(0, 1000), outcome=st.sampled_from(["ok", "fail", "ignored"]))
    def finish_call(self, pick: int, outcome: str) -> None:
        if self.calls:
            self.finish(self.calls.pop(pick % len(self.calls)), outcome)

    @rule(outcome=st.sampled_from(["ok", "fail"]))
    def finish_all(self, outcome: str) -> None:
        calls, self.calls = self.calls, []
        for call in calls:
            self.finish(call, outcome)

    def finish(self, call: Call, outcome: str) -> None:
        stale = call.generation != self.breaker.store.view().generation
        moves = sum(e.kind == "circuit_breaker.transition" for e in self.events)
        call.gate.set_result(outcome)
        self.settle()
        assert call.task is not None
        assert call.task.done()
        error = call.task.exception()
        expected = {"ok": type(None), "fail": Boom, "ignored": Ignored}[outcome]
        assert isinstance(error, expected), error
        if stale:  # admitted before the last move: may update metrics, never move the state
            assert sum(e.kind == "circuit_breaker.transition" for e in self.events) == moves

    @rule(pick=st.integers(0, 1000))
    def cancel_call(self, pick: int) -> None:
        if not self.calls:
            return
        call = self.calls.pop(pick % len(self.calls))
        assert call.task is not None
        call.task.cancel()
        self.settle()
        assert call.task.cancelled()

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 5.0, 7.5, 16.0]))
    def advance(self, seconds: float) -> None:
        self.loop.run_until_complete(self.clock.advance(seconds))

    @rule()
    def read_state(self) -> None:
        self.breaker.state  # noqa: B018 - reading applies elapsed periods

    @precondition(lambda self: self.manual_budget > 0)
    @rule(operation=st.sampled_from(["reset", "close", "force_open", "disable", "metrics_only"]))
    def manual(self, operation: str) -> None:
        self.manual_budget -= 1
        getattr(self.breaker, operation)()

    # -- invariants ---------------------------------------------------------
    @invariant()
    def check_events(self) -> None:
        for event in self.events[self.checked :]:
            if event.kind != "circuit_breaker.transition":
                continue
            attributes = event.attributes
            source, target, reason = attributes["from"], attributes["to"], attributes["reason"]
            # One event per move: each starts where the last one ended, none is a no-op.
            assert source is self.model, (source, self.model)
            assert source is not target
            if reason == "manual":
                assert target in MANUAL_TARGETS
            elif reason == "reset":
                assert target is CLOSED
            else:
                assert reason in AUTOMATIC_EDGES[(source, target)], (source, target, reason)
            if (source, target) == (CLOSED, OPEN):
                assert attributes["buffered_calls"] >= MIN_CALLS
            if target is OPEN:
                assert OPEN_FOR <= attributes["open_for"] <= MAX_OPEN_FOR
                self.opened_at, self.open_period = event.time, attributes["open_for"]
            if source is OPEN and target is HALF_OPEN:
                assert event.time >= self.opened_at + self.open_period
                assert event.time >= self.opened_at + OPEN_FOR
            note_event(f"{source.value} -> {target.value} ({reason})")
            self.model = target
        self.checked = len(self.events)
        assert self.breaker.store.view().state is self.model

    @invariant()
    def probes_never_exceed_the_limit(self) -> None:
        assert self.peak_probes <= HALF_OPEN_CALLS

    @invariant()
    def metrics_are_consistent(self) -> None:
        snapshot = self.breaker.metrics()
        assert 0 <= snapshot.failed_calls <= snapshot.buffered_calls
        assert 0 <= snapshot.slow_calls <= snapshot.buffered_calls
        if self.window_type == "count":
            assert snapshot.buffered_calls <= WINDOW
        self.check_events()  # metrics() may apply an elapsed period, with its event

    def teardown(self) -> None:
        for task in self.tasks:
            task.cancel()

        async def drain() -> None:
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self.loop.run_until_complete(drain())
        self.loop.close()


class TimeWindowBreakerMachine(BreakerMachine):
    window_type = "time"


MACHINE_SETTINGS = settings(max_examples=400, stateful_step_count=40, deadline=None)
TestCountWindowBreaker = BreakerMachine.TestCase
TestCountWindowBreaker.settings = MACHINE_SETTINGS
TestTimeWindowBreaker = TimeWindowBreakerMachine.TestCase
TestTimeWindowBreaker.settings = MACHINE_SETTINGS


# -- the window against a model ------------------------------------------------


async def _ok() -> str:
    return "ok"


async def _fail() -> str:
    raise Boom


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(st.booleans(), max_size=40),
    window=st.integers(1, 8),
    min_calls=st.integers(1, 12),
    threshold=st.sampled_from([10.0, 25.0, 50.0, 75.0, 100.0]),
)
def test_count_window_opens_exactly_when_a_list_model_says(
    outcomes: list[bool], window: int, min_calls: int, threshold: float
) -> None:
    expected = None
    for i in range(len(outcomes)):
        last = outcomes[max(0, i + 1 - window) : i + 1]
        if len(last) >= min(min_calls, window) and sum(last) * 100.0 >= threshold * len(last):
            expected = i
            break

    async def scenario() -> int | None:
        breaker = CircuitBreaker(
            window=window, min_calls=min_calls, failure_rate=threshold, clock=FakeClock()
        )
        for i, failed in enumerate(outcomes):
            with contextlib.suppress(Boom):
                await breaker.call(_fail if failed else _ok)
            if breaker.state is OPEN:
                return i
        return None

    assert asyncio.run(scenario()) == expected


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0, 7.0])), max_size=40
    ),
    seconds=st.integers(1, 6),
)
def test_time_window_counts_exactly_the_last_seconds(
    steps: list[tuple[bool, float]], seconds: int
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(window_type="time", window=seconds, min_calls=10_000, clock=clock)
        seen: list[tuple[float, bool]] = []
        for failed, gap in steps:
            await clock.advance(gap)
            with contextlib.suppress(Boom):
                await breaker.call(_fail if failed else _ok)
            seen.append((clock.monotonic(), failed))
            newest = math.floor(clock.monotonic())
            inside = [f for t, f in seen if math.floor(t) > newest - seconds]
            snapshot = breaker.metrics()
            assert (snapshot.buffered_calls, snapshot.failed_calls) == (len(inside), sum(inside))

    asyncio.run(scenario())


@settings(max_examples=200, deadline=None)
@given(
    window_type=st.sampled_from(["count", "time"]),
    size=st.integers(1, 6),
    steps=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.booleans(), st.floats(0.0, 3.0)), max_size=40
    ),
)
def test_record_success_is_record_of_a_quick_success(
    window_type: str, size: int, steps: list[tuple[bool, bool, bool, float]]
) -> None:
    """The breaker's hot path (``record_success``) leaves a window as ``record`` would."""
    windows = [CountWindow(size), CountWindow(size)]
    if window_type == "time":
        windows = [TimeWindow(size), TimeWindow(size)]
    plain, fast = windows
    now = 0.0
    for success, failed, slow, step in steps:
        now += step
        plain.record(failed and not success, slow and not success, now)
        if success:
            fast.record_success(now)
        else:
            fast.record(failed, slow, now)
        assert (fast.total, fast.failed, fast.slow) == (plain.total, plain.failed, plain.slow)
