from __future__ import annotations

import asyncio
import time

from interlink.core import SYSTEM_CLOCK, Clock, MonotonicClock


def test_the_system_clock_is_monotonic_and_satisfies_the_protocol() -> None:
    assert isinstance(SYSTEM_CLOCK, Clock)
    first = SYSTEM_CLOCK.monotonic()
    assert SYSTEM_CLOCK.monotonic() >= first
    assert abs(SYSTEM_CLOCK.wall() - time.time()) < 5
    assert repr(MonotonicClock()) == "MonotonicClock()"


async def test_the_system_clock_sleeps_and_schedules_on_the_running_loop() -> None:
    fired = asyncio.Event()
    handle = SYSTEM_CLOCK.call_later(0, fired.set)
    await SYSTEM_CLOCK.sleep(0)
    await asyncio.wait_for(fired.wait(), timeout=5)
    handle.cancel()
    assert fired.is_set()
