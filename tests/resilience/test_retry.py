"""Retry: attempts, backoff, Retry-After, deadlines, idempotency, sharing, cancellation, rejections.

Behaviours from docs research (d): 13 Retry-After, 14 jitter at the cap, 15 deadline,
17 idempotency gate, 18 shared policy objects, 19 cancellation, 20 rejections.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import statistics
from collections import Counter
from typing import Any

import pytest

from interlink.core.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    RateLimitedError,
    RejectedError,
    RetryExhaustedError,
    ThrottledLocallyError,
)
from interlink.resilience import (
    Deadline,
    ResilienceEvent,
    Retry,
    Timeout,
    current_attempt,
    idempotent,
    parse_retry_after,
)
from interlink.testing import FakeClock


class Boom(Exception):
    """An upstream failure; keyword arguments become attributes (retry_after, committed, ...)."""

    def __init__(self, message: str = "boom", **attributes: Any) -> None:
        super().__init__(message)
        for key, value in attributes.items():
            setattr(self, key, value)


class Script:
    """A callee that raises (or returns) the scripted outcomes in order, then returns "ok"."""

    def __init__(self, clock: FakeClock, *outcomes: object) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.times: list[float] = []
        self.attempts: list[int] = []

    @property
    def calls(self) -> int:
        return len(self.times)

    async def __call__(self) -> object:
        self.times.append(self.clock.monotonic())
        self.attempts.append(current_attempt())
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return "ok"


def record(policy: Retry) -> list[ResilienceEvent]:
    events: list[ResilienceEvent] = []
    policy.events.subscribe(events.append)
    return events


def kinds(events: list[ResilienceEvent]) -> list[str]:
    return [e.kind for e in events]


def gaps(times: list[float]) -> list[float]:
    return [after - before for before, after in itertools.pairwise(times)]


def no_jitter(clock: FakeClock, **options: Any) -> Retry:
    return Retry(jitter="none", clock=clock, **options)


# -- attempts and backoff -------------------------------------------------------------


async def test_first_success_calls_once_and_reports_one_attempt(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    events = record(retry)
    fn = Script(clock)
    assert await retry.call(fn) == "ok"
    assert fn.calls == 1
    assert [(e.kind, dict(e.attributes)) for e in events] == [
        ("retry.attempt", {"attempt": 1}),
        ("retry.success", {"attempts": 1}),
    ]


async def test_retries_until_success_with_max_attempts_counting_the_first_call(
    clock: FakeClock,
) -> None:
    retry = no_jitter(clock)
    fn = Script(clock, Boom(), Boom())
    assert await clock.run(retry.call(fn)) == "ok"
    assert fn.calls == 3
    assert fn.attempts == [1, 2, 3]


async def test_delays_grow_exponentially_without_jitter(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=5)
    events = record(retry)
    fn = Script(clock, Boom(), Boom(), Boom(), Boom())
    start = clock.monotonic()
    assert await clock.run(retry.call(fn)) == "ok"
    assert [t - start for t in fn.times] == [0.0, 0.5, 1.5, 3.5, 7.5]
    delays = [e.attributes for e in events if e.kind == "retry.delay"]
    assert [(d["attempt"], d["seconds"], d["reason"]) for d in delays] == [
        (1, 0.5, "backoff"),
        (2, 1.0, "backoff"),
        (3, 2.0, "backoff"),
        (4, 4.0, "backoff"),
    ]
    assert kinds(events)[-1] == "retry.success"
    assert events[-1].attributes == {"attempts": 5}


async def test_delays_are_capped_at_max_delay(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=6, initial_delay=1.0, multiplier=3.0, max_delay=4.0)
    fn = Script(clock, *(Boom() for _ in range(5)))
    start = clock.monotonic()
    await clock.run(retry.call(fn))
    assert gaps(fn.times) == [1.0, 3.0, 4.0, 4.0, 4.0]
    assert fn.times[0] == start


async def test_gives_up_after_max_attempts_with_the_last_error_as_cause(clock: FakeClock) -> None:
    retry = no_jitter(clock, name="payments")
    events = record(retry)
    last = Boom("third")
    fn = Script(clock, Boom("first"), Boom("second"), last)
    start = clock.monotonic()
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(retry.call(fn))
    error = caught.value
    assert error.attempts == 3
    assert error.elapsed == pytest.approx(1.5)
    assert clock.monotonic() - start == pytest.approx(1.5)
    assert error.__cause__ is last
    assert error.policy == "payments"
    assert error.retry_after is None
    assert "3 attempts" in str(error)
    assert events[-1].kind == "retry.gave_up"
    assert events[-1].attributes["reason"] == "max_attempts"


async def test_max_attempts_one_never_retries(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=1)
    fn = Script(clock, Boom())
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(retry.call(fn))
    assert caught.value.attempts == 1
    assert "1 attempt " in str(caught.value)
    assert fn.calls == 1


async def test_jitter_keeps_delays_spread_at_the_cap(clock: FakeClock) -> None:
    # Behaviour 14 through the policy: from retry 10 on, the exponential is far past the cap.
    retry = Retry(
        max_attempts=30,
        initial_delay=0.1,
        max_delay=5.0,
        jitter="full",
        random=random.Random(7),
        clock=clock,
    )
    events = record(retry)
    for _ in range(100):
        fn = Script(clock, *(Boom() for _ in range(29)))
        await clock.run(retry.call(fn))
    at_cap = [
        e.attributes["seconds"]
        for e in events
        if e.kind == "retry.delay" and e.attributes["attempt"] >= 10
    ]
    assert len(at_cap) == 2_000
    assert all(0.0 <= d <= 5.0 for d in at_cap)
    assert statistics.stdev(at_cap) > 1.0
    assert Counter(at_cap).most_common(1)[0][1] <= len(at_cap) // 100


async def test_decorrelated_jitter_state_belongs_to_each_call(clock: FakeClock) -> None:
    retry = Retry(
        max_attempts=6,
        initial_delay=1.0,
        max_delay=100.0,
        jitter="decorrelated",
        random=random.Random(3),
        clock=clock,
    )
    events = record(retry)
    for _ in range(20):
        await clock.run(retry.call(Script(clock, *(Boom() for _ in range(5)))))
    delays = [e.attributes for e in events if e.kind == "retry.delay"]
    # A fresh call starts from initial_delay again: its first sleep is U(1, 3).
    firsts = [d["seconds"] for d in delays if d["attempt"] == 1]
    assert len(firsts) == 20
    assert all(1.0 <= s <= 3.0 for s in firsts)
    # Each later sleep is at most three times the one before it, within the call.
    per_call = [delays[i : i + 5] for i in range(0, len(delays), 5)]
    for call in per_call:
        for before, after in itertools.pairwise(call):
            assert 1.0 <= after["seconds"] <= 3.0 * before["seconds"]


async def test_delays_accept_duration_strings(clock: FakeClock) -> None:
    retry = Retry(initial_delay="200ms", max_delay="2s", max_retry_after="1m", clock=clock)  # type: ignore[arg-type]
    assert (retry.initial_delay, retry.max_delay, retry.max_retry_after) == (0.2, 2.0, 60.0)


async def test_works_as_a_decorator(clock: FakeClock) -> None:
    calls = 0

    @no_jitter(clock)
    async def fetch(order_id: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Boom()
        return order_id

    assert await clock.run(fetch("o-1")) == "o-1"
    assert calls == 2


# -- what is retried ------------------------------------------------------------------


async def test_retry_on_type_leaves_other_errors_alone(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_on=ConnectionError)
    events = record(retry)
    fn = Script(clock, ConnectionResetError(), KeyError("x"))
    with pytest.raises(KeyError):
        await clock.run(retry.call(fn))
    assert fn.calls == 2
    assert events[-1].kind == "retry.gave_up"
    assert events[-1].attributes["reason"] == "not_retryable"


async def test_retry_on_tuple_of_types(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_on=(KeyError, ConnectionError))
    fn = Script(clock, KeyError("a"), ConnectionResetError(), ValueError("c"))
    with pytest.raises(ValueError, match="c"):
        await clock.run(retry.call(fn))
    assert fn.calls == 3


async def test_retry_on_predicate(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_on=lambda exc: "transient" in str(exc))
    fn = Script(clock, Boom("transient"), Boom("fatal"))
    with pytest.raises(Boom, match="fatal"):
        await clock.run(retry.call(fn))
    assert fn.calls == 2


async def test_deadline_exceeded_is_not_retried_by_default(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    fn = Script(clock, DeadlineExceededError("late"))
    with pytest.raises(DeadlineExceededError):
        await clock.run(retry.call(fn))
    assert fn.calls == 1


async def test_retry_on_result_retries_unwanted_results(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_on_result=lambda result: result == "busy")
    fn = Script(clock, "busy", "busy")
    assert await clock.run(retry.call(fn)) == "ok"
    assert fn.calls == 3


async def test_retry_on_result_exhaustion_keeps_the_last_result(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_on_result=lambda result: result != "ok")
    fn = Script(clock, "busy-1", "busy-2", "busy-3")
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(retry.call(fn))
    assert caught.value.last_result == "busy-3"
    assert caught.value.__cause__ is None
    assert caught.value.attempts == 3


async def test_errors_and_results_can_alternate(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=4, retry_on_result=lambda result: result == "busy")
    fn = Script(clock, "busy", Boom(), "busy")
    assert await clock.run(retry.call(fn)) == "ok"
    assert fn.calls == 4


# -- current_attempt ------------------------------------------------------------------


async def test_current_attempt_is_one_outside_any_retry() -> None:
    assert current_attempt() == 1


@pytest.mark.parametrize(
    ("failures", "seen"),
    [(2, [1, 2, 1]), (3, [1, 2, 1, 2])],
)
async def test_nested_retries_number_their_own_attempts(
    clock: FakeClock, failures: int, seen: list[int]
) -> None:
    inner = no_jitter(clock, max_attempts=2)
    # Retrying an inner retry's give-up must be asked for explicitly.
    outer = no_jitter(clock, max_attempts=2, retry_on=Exception)
    inner_events = record(inner)
    fn = Script(clock, *(Boom() for _ in range(failures)))

    async def through_inner() -> object:
        return await inner.call(fn)

    assert await clock.run(outer.call(through_inner)) == "ok"
    assert fn.attempts == seen
    assert current_attempt() == 1
    assert inner_events[-1].kind == "retry.success"


# -- Retry-After and server pushback (behaviour 13) ----------------------------------------


async def test_server_retry_after_wins_over_the_computed_backoff(clock: FakeClock) -> None:
    retry = no_jitter(clock, initial_delay=0.1)
    events = record(retry)
    fn = Script(clock, Boom("429", retry_after=3.0))
    assert await clock.run(retry.call(fn)) == "ok"
    assert fn.times[1] - fn.times[0] >= 3.0
    assert fn.times[1] - fn.times[0] == pytest.approx(3.0)
    delay = next(e for e in events if e.kind == "retry.delay")
    assert delay.attributes["reason"] == "retry_after"


async def test_a_shorter_retry_after_also_wins(clock: FakeClock) -> None:
    retry = no_jitter(clock, initial_delay=5.0)
    fn = Script(clock, Boom("503", retry_after=1))
    await clock.run(retry.call(fn))
    assert fn.times[1] - fn.times[0] == pytest.approx(1.0)


async def test_unusable_retry_after_falls_back_to_backoff(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    now = clock.wall()
    fn = Script(
        clock,
        Boom("past date", retry_after=parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now=now)),
        Boom("string", retry_after="3"),
    )
    assert await clock.run(retry.call(fn)) == "ok"
    assert gaps(fn.times) == [0.5, 1.0]


async def test_nan_retry_after_is_ignored(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    fn = Script(clock, Boom(retry_after=float("nan")))
    await clock.run(retry.call(fn))
    assert fn.times[1] - fn.times[0] == 0.5


async def test_retry_after_beyond_max_gives_up_at_once_without_sleeping(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_retry_after=60.0)
    events = record(retry)
    cause = Boom("429", retry_after=120.0)
    fn = Script(clock, cause)
    start = clock.monotonic()
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(retry.call(fn))
    assert clock.monotonic() == start
    assert clock.pending == 0
    assert caught.value.retry_after == 120.0
    assert caught.value.attempts == 1
    assert caught.value.__cause__ is cause
    assert "max_retry_after" in str(caught.value)
    assert events[-1].attributes["reason"] == "retry_after_too_long"


async def test_retry_after_beyond_the_deadline_gives_up_at_once(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    events = record(retry)
    fn = Script(clock, Boom("429", retry_after=10.0))
    start = clock.monotonic()
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(Deadline(5.0, clock=clock).call(retry.call, fn))
    assert clock.monotonic() == start
    assert caught.value.retry_after == 10.0
    assert "deadline" in str(caught.value)
    assert events[-1].attributes["reason"] == "deadline"


async def test_last_retry_after_is_reported_when_attempts_run_out(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=2)
    fn = Script(clock, Boom(retry_after=1.0), Boom(retry_after=2.0))
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(retry.call(fn))
    assert caught.value.retry_after == 2.0


@pytest.mark.parametrize(
    "pushback",
    [Boom("grpc pushback", retry_after=-1.0), Boom("overloaded", retryable=False)],
)
async def test_server_pushback_means_do_not_retry(clock: FakeClock, pushback: Boom) -> None:
    retry = no_jitter(clock)
    events = record(retry)
    fn = Script(clock, pushback)
    with pytest.raises(Boom) as caught:
        await clock.run(retry.call(fn))
    assert caught.value is pushback
    assert fn.calls == 1
    assert events[-1].attributes["reason"] == "not_retryable"


# -- the deadline covers every attempt and sleep (behaviour 15) ----------------------------


async def test_no_sleep_is_scheduled_past_the_deadline(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=10)
    events = record(retry)
    fn = Script(clock, *(Boom() for _ in range(10)))
    start = clock.monotonic()
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(Deadline(2.0, clock=clock).call(retry.call, fn))
    # Attempts at 0, 0.5 and 1.5; the next would follow a 2 s sleep, ending at 3.5 > 2.
    assert [t - start for t in fn.times] == [0.0, 0.5, 1.5]
    assert caught.value.attempts == 3
    assert caught.value.elapsed == pytest.approx(1.5)
    assert clock.monotonic() - start == pytest.approx(1.5)
    assert events[-1].attributes["reason"] == "deadline"


async def test_a_sleep_ending_exactly_at_the_deadline_is_not_taken(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=10, initial_delay=1.0)
    fn = Script(clock, *(Boom() for _ in range(10)))
    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(Deadline(1.0, clock=clock).call(retry.call, fn))
    assert caught.value.attempts == 1
    assert fn.calls == 1


async def test_attempt_timeouts_shrink_to_the_time_left(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=10)
    started: list[float] = []

    async def hang() -> None:
        started.append(clock.monotonic())
        await asyncio.Event().wait()

    start = clock.monotonic()
    timeout = Timeout(0.9, clock=clock)

    async def attempt() -> None:
        await timeout.call(hang)

    with pytest.raises(DeadlineExceededError):
        await clock.run(Deadline(2.0, clock=clock).call(retry.call, attempt))
    # Attempt 1 times out at 0.9; after 0.5 s, attempt 2 gets only the 0.6 s left.
    assert [t - start for t in started] == pytest.approx([0.0, 1.4])
    assert clock.monotonic() - start == pytest.approx(2.0)


async def test_attempt_timeouts_are_retried_within_the_deadline(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=10)
    started: list[float] = []

    async def hang() -> None:
        started.append(clock.monotonic())
        await asyncio.Event().wait()

    start = clock.monotonic()
    timeout = Timeout(0.7, clock=clock)

    async def attempt() -> None:
        await timeout.call(hang)

    with pytest.raises(RetryExhaustedError) as caught:
        await clock.run(Deadline(2.0, clock=clock).call(retry.call, attempt))
    assert [t - start for t in started] == pytest.approx([0.0, 1.2])
    assert caught.value.attempts == 2
    assert caught.value.elapsed == pytest.approx(1.9)
    assert isinstance(caught.value.__cause__, AttemptTimeoutError)


# -- idempotency gate (behaviour 17) -----------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [Boom("HTTP 500"), Boom("read timeout", request_sent=True), TimeoutError("read")],
)
async def test_non_idempotent_call_is_not_retried_once_the_request_may_have_left(
    clock: FakeClock, error: Exception
) -> None:
    retry = no_jitter(clock, idempotent=False)
    fn = Script(clock, error)
    with pytest.raises(type(error)):
        await clock.run(retry.call(fn))
    assert fn.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        socket.gaierror(socket.EAI_NONAME, "no such host"),
        Boom("connect failed", request_sent=False),
    ],
)
async def test_non_idempotent_call_is_retried_when_the_request_never_left(
    clock: FakeClock, error: Exception
) -> None:
    retry = no_jitter(clock, idempotent=False)
    fn = Script(clock, error)
    assert await clock.run(retry.call(fn)) == "ok"
    assert fn.calls == 2


async def test_request_sent_attribute_beats_the_error_type(clock: FakeClock) -> None:
    retry = no_jitter(clock, idempotent=False)
    error = ConnectionRefusedError()
    error.request_sent = True  # type: ignore[attr-defined]
    fn = Script(clock, error)
    with pytest.raises(ConnectionRefusedError):
        await clock.run(retry.call(fn))


async def test_idempotent_false_block_overrides_an_idempotent_policy(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    fn = Script(clock, Boom("HTTP 500"))
    with idempotent(False), pytest.raises(Boom):
        await clock.run(retry.call(fn))
    assert fn.calls == 1
    # The block is over: the policy's own setting applies again.
    fn = Script(clock, Boom("HTTP 500"))
    assert await clock.run(retry.call(fn)) == "ok"


async def test_idempotent_block_overrides_a_non_idempotent_policy(clock: FakeClock) -> None:
    retry = no_jitter(clock, idempotent=False)
    fn = Script(clock, Boom("HTTP 500"))
    with idempotent():
        assert await clock.run(retry.call(fn)) == "ok"
    assert fn.calls == 2


async def test_committed_responses_are_never_retried(clock: FakeClock) -> None:
    retry = no_jitter(clock)
    events = record(retry)
    fn = Script(clock, Boom("stream broke after headers", committed=True, request_sent=False))
    with pytest.raises(Boom):
        await clock.run(retry.call(fn))
    assert fn.calls == 1
    assert events[-1].attributes["reason"] == "not_retryable"


# -- one policy shared by many calls (behaviour 18) -----------------------------------------


async def test_one_retry_shared_by_1000_concurrent_calls_keeps_per_call_state(
    clock: FakeClock,
) -> None:
    retry = no_jitter(clock, max_attempts=4)
    events = record(retry)
    start = clock.monotonic()

    async def one_call(i: int) -> tuple[object, list[int], list[float]]:
        failures = i % 5  # 0..3 succeed on attempt failures+1; 4 exhausts all 4 attempts
        duration = (i % 7) * 0.01
        seen: list[int] = []
        times: list[float] = []

        async def fn() -> int:
            seen.append(current_attempt())
            times.append(clock.monotonic() - start)
            await clock.sleep(duration)
            if len(seen) <= failures:
                raise Boom(str(i))
            return i

        try:
            result: object = await retry.call(fn)
        except RetryExhaustedError as exc:
            result = exc
        return result, seen, times

    outcomes = await clock.run(asyncio.gather(*(one_call(i) for i in range(1000))))
    for i, (result, seen, times) in enumerate(outcomes):
        failures, duration = i % 5, (i % 7) * 0.01
        attempts = min(failures + 1, 4)
        assert seen == list(range(1, attempts + 1))
        expected, t = [], 0.0
        for n in range(1, attempts + 1):
            expected.append(t)
            t += duration + 0.5 * 2 ** (n - 1)
        assert times == pytest.approx(expected)
        if failures < 4:
            assert result == i
        else:
            assert isinstance(result, RetryExhaustedError)
            assert result.attempts == 4
            assert str(result.__cause__) == str(i)
    successes = Counter(e.attributes["attempts"] for e in events if e.kind == "retry.success")
    assert successes == {1: 200, 2: 200, 3: 200, 4: 200}
    gave_up = [e for e in events if e.kind == "retry.gave_up"]
    assert len(gave_up) == 200
    assert all(e.attributes["attempts"] == 4 for e in gave_up)


# -- cancellation (behaviour 19) ------------------------------------------------------------


async def test_cancelling_during_the_backoff_sleep_stops_at_once(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=5)
    events = record(retry)
    fn = Script(clock, *(Boom() for _ in range(5)))
    task = asyncio.ensure_future(retry.call(fn))
    await clock.wait_for_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.advance(60.0)
    assert fn.calls == 1
    assert clock.pending == 0
    assert "retry.gave_up" not in kinds(events)
    assert current_attempt() == 1


async def test_cancelling_during_an_attempt_stops_at_once(clock: FakeClock) -> None:
    retry = no_jitter(clock, max_attempts=5)
    events = record(retry)
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    task = asyncio.ensure_future(retry.call(hang))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.advance(60.0)
    assert calls == 1
    assert kinds(events) == ["retry.attempt"]


async def test_cancelled_error_raised_by_the_callee_is_never_retried(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_on=lambda exc: True)  # even a catch-all predicate
    fn = Script(clock, Boom(), asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await clock.run(retry.call(fn))
    assert fn.calls == 2


# -- interlink's own rejections (behaviour 20) ----------------------------------------------


@pytest.mark.parametrize(
    "rejection",
    [
        CircuitOpenError("open", retry_after=5.0),
        BulkheadFullError("full"),
        RateLimitedError("limited", retry_after=0.1),
        ThrottledLocallyError("throttled"),
    ],
)
async def test_rejections_are_not_retried_by_default(
    clock: FakeClock, rejection: RejectedError
) -> None:
    retry = no_jitter(clock, retry_on=Exception)
    fn = Script(clock, rejection)
    with pytest.raises(RejectedError) as caught:
        await clock.run(retry.call(fn))
    assert caught.value is rejection
    assert fn.calls == 1


async def test_retried_rejections_wait_at_least_their_retry_after(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_rejections=True)
    events = record(retry)
    fn = Script(clock, CircuitOpenError("open", retry_after=4.0))
    assert await clock.run(retry.call(fn)) == "ok"
    assert fn.times[1] - fn.times[0] == pytest.approx(4.0)
    delay = next(e for e in events if e.kind == "retry.delay")
    assert delay.attributes["reason"] == "rejection"


async def test_retried_rejections_wait_the_backoff_when_it_is_longer(clock: FakeClock) -> None:
    retry = no_jitter(clock, retry_rejections=True, initial_delay=2.0)
    fn = Script(clock, RateLimitedError("limited", retry_after=0.25), BulkheadFullError("full"))
    assert await clock.run(retry.call(fn)) == "ok"
    assert gaps(fn.times) == [2.0, 4.0]


async def test_rejections_are_retried_for_non_idempotent_calls(clock: FakeClock) -> None:
    # A rejected call never ran, so repeating it cannot duplicate anything.
    retry = no_jitter(clock, retry_rejections=True, idempotent=False)
    fn = Script(clock, BulkheadFullError("full"))
    assert await clock.run(retry.call(fn)) == "ok"


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"initial_delay": -0.1}, "initial_delay"),
        ({"initial_delay": float("nan")}, "initial_delay"),
        ({"initial_delay": "soon"}, "initial_delay"),
        ({"max_delay": -1.0}, "max_delay"),
        ({"initial_delay": 5.0, "max_delay": 1.0}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": float("inf")}, "multiplier"),
        ({"multiplier": "2"}, "multiplier"),
        ({"multiplier": True}, "multiplier"),
        ({"jitter": "gaussian"}, "jitter"),
        ({"retry_on": 42}, "retry_on"),
        ({"retry_on": str}, "retry_on"),
        ({"retry_on": ()}, "retry_on"),
        ({"retry_on": (ValueError, "KeyError")}, "retry_on"),
        ({"retry_on_result": "busy"}, "retry_on_result"),
        ({"max_retry_after": -1.0}, "max_retry_after"),
        ({"budget": object()}, "budget"),
        ({"idempotent": "yes"}, "idempotent"),
        ({"retry_rejections": 1}, "retry_rejections"),
        ({"random": 42}, "random"),
    ],
)
def test_bad_arguments_raise_config_error_naming_them(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Retry(**options)


def test_defaults_follow_the_anchors() -> None:
    retry = Retry()
    assert retry.max_attempts == 3  # resilience4j, gRPC's usual, SRE book's "at most 3"
    assert retry.initial_delay == 0.5  # resilience4j waitDuration
    assert retry.multiplier == 2.0  # gRPC/Polly exponential
    assert retry.max_delay == 10.0
    assert retry.jitter == "full"  # AWS, gRPC A6
    assert retry.max_retry_after == 60.0
    assert retry.budget is None
    assert retry.idempotent is True
    assert retry.retry_rejections is False
    assert retry.name == "retry"
    assert repr(retry) == (
        "Retry(max_attempts=3, initial_delay=0.5, multiplier=2.0, max_delay=10.0, "
        "jitter='full', name='retry')"
    )


async def test_a_failing_predicate_is_not_swallowed(clock: FakeClock) -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bad predicate")

    retry = no_jitter(clock, retry_on=broken)
    with pytest.raises(RuntimeError, match="bad predicate"):
        await retry.call(Script(clock, Boom()))


async def test_an_outer_retry_does_not_retry_an_inner_retry_that_gave_up(clock: FakeClock) -> None:
    inner = Retry(max_attempts=3, initial_delay=0.1, clock=clock)
    outer = Retry(max_attempts=3, initial_delay=0.1, clock=clock)
    calls = 0

    async def always_fails() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("down")

    with pytest.raises(RetryExhaustedError) as info:
        await clock.run(outer.call(inner.call, always_fails))
    assert calls == 3
    assert info.value.attempts == 3
