"""RateLimiter, behaviour 22 as a property: for any schedule of arrivals, cancellations and
drains, the calls admitted in any window [t, t + d] number at most ``burst + rate * d``,
the first instant after start included."""

from __future__ import annotations

import asyncio
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.core.errors import RateLimitedError
from interlink.resilience import RateLimiter
from interlink.testing import FakeClock

# Float slack for "at most": far below one call, far above rounding.
_SLACK = 1e-6

step = st.tuples(
    st.floats(min_value=0.0, max_value=0.5, allow_nan=False),  # time before the step
    st.sampled_from(["call", "call", "call", "call", "cancel", "drain"]),
    st.integers(min_value=0, max_value=1_000),  # which task to cancel
    st.sampled_from([0.0, 0.0, 0.3, 2.0]),  # drain hold
)


async def _run(
    rate: float,
    burst: float,
    initial_share: float,
    max_wait: float,
    schedule: list[tuple[float, str, int, float]],
) -> tuple[list[float], list[BaseException | None]]:
    clock = FakeClock()
    limiter = RateLimiter(
        rate=rate,
        burst=burst,
        initial_tokens=burst * initial_share,
        max_wait=max_wait,
        clock=clock,
    )
    admitted: list[float] = []

    async def work() -> None:
        admitted.append(clock.monotonic())

    tasks: list[asyncio.Task[None]] = []
    for gap, action, pick, hold in schedule:
        await clock.advance(gap)
        if action == "call":
            tasks.append(asyncio.create_task(limiter.call(work)))
            await clock.settle()
        elif action == "cancel" and tasks:
            tasks[pick % len(tasks)].cancel()
        elif action == "drain":
            await limiter.drain(hold)
    await clock.advance(10_000.0)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert limiter.waiting == 0
    return admitted, outcomes


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50.0, allow_nan=False),
    burst=st.floats(min_value=1.0, max_value=20.0, allow_nan=False),
    initial_share=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    max_wait=st.sampled_from([0.0, 0.05, 0.5, math.inf]),
    schedule=st.lists(step, max_size=80),
)
def test_admissions_in_any_window_stay_within_burst_plus_rate_times_its_length(
    rate: float,
    burst: float,
    initial_share: float,
    max_wait: float,
    schedule: list[tuple[float, str, int, float]],
) -> None:
    admitted, outcomes = asyncio.run(_run(rate, burst, initial_share, max_wait, schedule))

    assert admitted == sorted(admitted)
    for first in range(len(admitted)):
        for last in range(first, len(admitted)):
            window = admitted[last] - admitted[first]
            assert last - first + 1 <= burst + rate * window + _SLACK
    for outcome in outcomes:
        assert outcome is None or isinstance(outcome, RateLimitedError | asyncio.CancelledError)
    if max_wait == math.inf:
        # Waiting without limit, nobody is refused: every call ran or was cancelled.
        assert not any(isinstance(o, RateLimitedError) for o in outcomes)
