"""`make demo` tells its story: retries absorb, the breaker opens and closes, the bulkhead cuts."""

from __future__ import annotations

import io

from rich.console import Console

from interlink.demo import run_resilience_demo


async def test_the_demo_shows_retries_a_breaker_cycle_and_bulkhead_rejections() -> None:
    out = io.StringIO()
    report = await run_resilience_demo(Console(file=out, width=120), pace=0.0, open_for=0.2)
    text = out.getvalue()

    # Act 1: one upstream request in four fails, and every call still succeeds.
    assert report.retries >= 3
    # Act 2: the outage opens the breaker, after which calls are rejected without a request.
    assert ("closed", "open") in report.transitions
    assert report.rejected_by_breaker >= 5
    # Act 3: half-open probes succeed and close it again.
    assert ("open", "half_open") in report.transitions
    assert ("half_open", "closed") in report.transitions
    # Act 4: 12 concurrent slow calls against a bulkhead of 4.
    assert report.rejected_by_bulkhead == 8
    assert report.calls == 42
    assert report.succeeded == 12 + 6 + 4
    assert report.upstream_requests < report.attempts + 1
    assert "breaker open" in text
    assert "Summary:" in text
    assert "closed -> open -> half_open -> closed" in text


async def test_the_demo_renders_live_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    report = await run_resilience_demo(console, pace=0.0, open_for=0.2)
    assert report.rejected_by_bulkhead == 8
    assert "interlink resilience demo" in out.getvalue()
