"""AdaptiveThrottle: behaviour 25 (SRE client-side throttling: drop rate, decay, separate counts)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from interlink.core.errors import CircuitOpenError, ConfigError, ThrottledLocallyError
from interlink.resilience import AdaptiveThrottle, ResilienceEvent, is_overload
from interlink.testing import FakeClock


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class HttpxStyleError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Backend:
    """Accepts one request in ``every``; refuses the rest with a 503."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.seen = 0

    async def handle(self) -> str:
        self.seen += 1
        if self.every == 0 or self.seen % self.every:
            raise HttpError(503)
        return "ok"


class NeverDrops(random.Random):
    """A random source that lets everything through short of certainty: counts stay exact."""

    def random(self) -> float:
        return 0.999_999


async def attempt(throttle: AdaptiveThrottle, backend: Backend) -> str:
    """Call once; say what happened: "ok", "refused" (by the backend) or "dropped" (locally)."""
    try:
        return await throttle.call(backend.handle)
    except ThrottledLocallyError:
        return "dropped"
    except HttpError:
        return "refused"


async def test_with_a_quarter_accepted_half_the_calls_are_dropped_locally(
    clock: FakeClock,
) -> None:
    throttle = AdaptiveThrottle(k=2.0, random=random.Random(25), clock=clock)
    backend = Backend(every=4)
    while throttle.requests < 4_000:
        await attempt(throttle, backend)
    assert throttle.accepts / throttle.requests == pytest.approx(0.25, abs=0.001)

    outcomes = [await attempt(throttle, backend) for _ in range(10_000)]

    assert outcomes.count("dropped") / len(outcomes) == pytest.approx(0.5, abs=0.05)
    assert throttle.drop_probability == pytest.approx(0.5, abs=0.001)
    # Local drops never reach the backend and are counted on their own.
    assert throttle.requests == backend.seen
    assert throttle.server_rejections == throttle.requests - throttle.accepts
    assert throttle.local_rejections >= outcomes.count("dropped")


async def test_as_the_backend_recovers_and_the_window_slides_drops_decay_to_zero(
    clock: FakeClock,
) -> None:
    throttle = AdaptiveThrottle(random=random.Random(7), clock=clock)
    backend = Backend(every=4)
    while throttle.requests < 2_000:
        await attempt(throttle, backend)
    backend.every = 1  # recovered: every request accepted from now on

    probabilities = []
    drop_rates = []
    for _ in range(13):  # 130 s in steps of 10 s, 100 calls per step
        await clock.advance(10.0)
        probabilities.append(throttle.drop_probability)
        outcomes = [await attempt(throttle, backend) for _ in range(100)]
        drop_rates.append(outcomes.count("dropped") / 100)

    assert probabilities[0] == pytest.approx(0.5, abs=0.01)
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[-1] == 0.0
    assert drop_rates[0] > 0.2
    assert drop_rates[-1] == 0.0
    assert throttle.local_rejections > 0
    await clock.advance(120.0)
    assert throttle.local_rejections == 0  # local drops age out of the window too


async def test_only_buckets_older_than_the_window_are_forgotten(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(window=10.0, random=NeverDrops(), clock=clock)
    refusing = Backend(every=0)
    for _ in range(4):
        await attempt(throttle, refusing)
    await clock.advance(6.0)
    for _ in range(3):
        await attempt(throttle, refusing)
    assert throttle.requests == 7
    await clock.advance(4.0)  # the first four are now 10 s old
    assert throttle.requests == 3
    assert throttle.drop_probability == pytest.approx(3 / 4)
    await clock.advance(6.0)
    assert throttle.requests == 0
    assert throttle.drop_probability == 0.0


async def test_a_healthy_backend_is_never_throttled(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(random=random.Random(3), clock=clock)
    backend = Backend(every=1)
    outcomes = [await attempt(throttle, backend) for _ in range(1_000)]
    assert outcomes == ["ok"] * 1_000
    assert throttle.drop_probability == 0.0


async def test_drop_probability_follows_the_sre_formula(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(k=2.0, random=random.Random(0), clock=clock)
    backend = Backend(every=1)
    await attempt(throttle, backend)
    backend.every = 0
    for _ in range(3):
        await attempt(throttle, backend)
    assert (throttle.requests, throttle.accepts) == (4, 1)
    assert throttle.drop_probability == pytest.approx((4 - 2 * 1) / (4 + 1))
    lenient = AdaptiveThrottle(k=4.0, clock=clock)
    for _ in range(4):
        await attempt(lenient, Backend(every=1))
    assert lenient.drop_probability == 0.0


async def test_no_local_drops_below_min_requests(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(min_requests=10, random=random.Random(0), clock=clock)
    backend = Backend(every=0)
    outcomes = [await attempt(throttle, backend) for _ in range(10)]
    assert outcomes == ["refused"] * 10
    assert throttle.drop_probability == pytest.approx(10 / 11)
    later = [await attempt(throttle, backend) for _ in range(50)]
    assert "dropped" in later


@pytest.mark.parametrize(
    ("error", "overload"),
    [
        (HttpError(503), True),
        (HttpError(429), True),
        (HttpxStyleError(429), True),
        (CircuitOpenError("inner breaker open"), True),
        (HttpError(500), False),
        (HttpError(404), False),
        (ValueError("bad payload"), False),
        (TimeoutError(), False),
    ],
)
async def test_which_errors_count_as_the_backend_refusing(
    clock: FakeClock, error: Exception, overload: bool
) -> None:
    assert is_overload(error) is overload
    throttle = AdaptiveThrottle(clock=clock)

    async def fail() -> None:
        raise error

    with pytest.raises(type(error)):
        await throttle.call(fail)
    assert throttle.requests == 1
    assert throttle.accepts == (0 if overload else 1)


async def test_overloaded_on_can_be_types_or_a_predicate(clock: FakeClock) -> None:
    by_type = AdaptiveThrottle(overloaded_on=(TimeoutError,), random=NeverDrops(), clock=clock)
    by_predicate = AdaptiveThrottle(
        overloaded_on=lambda exc: is_overload(exc) or isinstance(exc, TimeoutError),
        random=NeverDrops(),
        clock=clock,
    )
    for error in (TimeoutError(), HttpError(503)):

        async def fail(error: Exception = error) -> None:
            raise error

        for throttle in (by_type, by_predicate):
            with pytest.raises(type(error)):
                await throttle.call(fail)
    assert (by_type.requests, by_type.accepts) == (2, 1)  # a 503 is not in its list
    assert (by_predicate.requests, by_predicate.accepts) == (2, 0)


async def test_a_cancelled_call_counts_as_nothing(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(clock=clock)
    task = asyncio.create_task(throttle.call(clock.sleep, 5.0))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert throttle.requests == 0


async def test_outcomes_are_counted_when_they_arrive(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(window=10.0, clock=clock)

    async def slow() -> str:
        await clock.sleep(8.0)
        return "late"

    task = asyncio.create_task(throttle.call(slow))
    await clock.advance(5.0)
    assert throttle.requests == 0  # in flight: no outcome yet
    await clock.advance(3.0)
    assert await task == "late"
    await clock.advance(9.0)  # 17 s after the start, 9 s after the answer
    assert (throttle.requests, throttle.accepts) == (1, 1)


async def test_a_local_drop_raises_and_emits_an_event(clock: FakeClock) -> None:
    rng = random.Random(0)
    throttle = AdaptiveThrottle(random=rng, name="search", clock=clock)
    seen: list[ResilienceEvent] = []
    throttle.events.subscribe(seen.append)
    refusing = Backend(every=0)
    for _ in range(20):
        await attempt(throttle, refusing)
    assert seen, "twenty refusals in a row must lead to a local drop"
    event = seen[0]
    assert event.kind == "adaptive_throttle.rejected"
    assert event.policy == "search"
    assert set(event.attributes) == {"probability", "requests", "accepts"}
    assert event.attributes["accepts"] == 0

    caught = None
    while caught is None:
        try:
            await throttle.call(refusing.handle)
        except ThrottledLocallyError as exc:
            caught = exc
        except HttpError:
            pass
    assert caught.retry_after is None
    assert caught.policy == "search"
    assert "dropped locally" in str(caught)


async def test_it_works_as_a_decorator_and_has_a_readable_repr(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(clock=clock)

    @throttle
    async def ping() -> str:
        return "pong"

    assert await ping() == "pong"
    assert repr(throttle) == "AdaptiveThrottle(k=2.0, window=120.0, name='adaptive_throttle')"


def test_defaults_follow_the_sre_book() -> None:
    throttle = AdaptiveThrottle()
    assert (throttle.k, throttle.window, throttle.min_requests) == (2.0, 120.0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0.5}, "k must be a finite number >= 1, got 0.5"),
        ({"k": math.inf}, "k must be a finite number >= 1"),
        ({"k": math.nan}, "k must be a finite number >= 1"),
        ({"k": True}, "k must be a finite number >= 1"),
        ({"window": 0}, "window must be a finite number of seconds > 0, got 0"),
        ({"window": math.inf}, "window must be a finite number of seconds > 0"),
        ({"window": "2m"}, "window must be a finite number of seconds > 0"),
        ({"min_requests": -1}, "min_requests must be an integer >= 0, got -1"),
        ({"min_requests": 2.5}, "min_requests must be an integer >= 0"),
        ({"min_requests": True}, "min_requests must be an integer >= 0"),
        ({"overloaded_on": ()}, "overloaded_on must name at least one exception type"),
        ({"overloaded_on": (ValueError, 3)}, "overloaded_on must hold Exception subclasses"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AdaptiveThrottle(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert str(caught.value).startswith("AdaptiveThrottle ")


async def test_a_sub_second_window_uses_one_bucket(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(window=0.5, clock=clock)
    await attempt(throttle, Backend(every=0))
    assert throttle.requests == 1
    await clock.advance(0.5)
    assert throttle.requests == 0
