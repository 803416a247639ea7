"""The resilience demo: a pipeline in front of a real upstream that misbehaves on cue.

Four acts, each a few seconds: a flaky upstream that retries absorb, an
outage that opens the circuit breaker, the recovery that closes it through
half-open probes, and a burst that the bulkhead cuts down to size. On a
terminal it renders live with rich; elsewhere it prints one line per event.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from interlink.core.errors import BulkheadFullError, CircuitOpenError, InterlinkError
from interlink.demo._upstream import DemoUpstream, Mode
from interlink.resilience import (
    Bulkhead,
    CircuitBreaker,
    Pipeline,
    ResilienceEvent,
    Retry,
    Timeout,
)

__all__ = ["DemoReport", "run_resilience_demo"]


class UpstreamError(InterlinkError):
    """The demo upstream answered with a server error."""

    def __init__(self, status: int) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status


@dataclass
class DemoReport:
    """What happened, counted: the demo's story in numbers."""

    calls: int = 0
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    retries: int = 0
    rejected_by_breaker: int = 0
    rejected_by_bulkhead: int = 0
    transitions: list[tuple[str, str]] = field(default_factory=list)
    upstream_requests: int = 0


class _Show:
    """Renders the demo: live on a terminal, one line per event elsewhere."""

    def __init__(self, console: Console, report: DemoReport, breaker: CircuitBreaker) -> None:
        self.console = console
        self.report = report
        self.breaker = breaker
        self.act = ""
        self.lines: deque[str] = deque(maxlen=12)
        self.live: Live | None = None

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.live is None:
            self.console.print(line, highlight=False, soft_wrap=True)
        else:
            self.live.update(self.render())

    def render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(justify="right")
        r = self.report
        state = self.breaker.state.value
        colour = {"closed": "green", "open": "red", "half_open": "yellow"}.get(state, "white")
        rows = [
            ("calls", str(r.calls)),
            ("succeeded", f"[green]{r.succeeded}[/]"),
            ("failed", f"[red]{r.failed}[/]"),
            ("attempts / retries", f"{r.attempts} / {r.retries}"),
            ("breaker", f"[{colour}]{state}[/]"),
            ("rejected by breaker", str(r.rejected_by_breaker)),
            ("rejected by bulkhead", str(r.rejected_by_bulkhead)),
            ("upstream requests", str(r.upstream_requests)),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return Group(
            Panel(self.act, title="interlink resilience demo", border_style="cyan"),
            table,
            Panel("\n".join(self.lines), title="events", border_style="dim"),
        )


def _describe(event: ResilienceEvent) -> str | None:
    attrs = event.attributes
    if event.kind == "retry.delay":
        return f"  retry: attempt {attrs['attempt']} failed, waiting {attrs['seconds'] * 1000:.0f} ms ({attrs['reason']})"
    if event.kind == "circuit_breaker.transition":
        return f"  breaker: {_state(attrs['from'])} -> {_state(attrs['to'])} ({attrs.get('reason', '')})"
    if event.kind == "bulkhead.rejected":
        return f"  bulkhead: rejected, {attrs['in_use']} calls already in flight"
    return None


def _state(value: Any) -> str:
    return str(getattr(value, "value", value))


async def run_resilience_demo(
    console: Console | None = None, *, pace: float = 1.0, open_for: float = 2.0
) -> DemoReport:
    """Run the four acts against a local upstream and return what was counted.

    ``pace`` scales the pauses between calls (tests pass a small value);
    ``open_for`` is the breaker's open period in seconds.
    """
    console = console or Console()
    upstream = DemoUpstream()
    base_url = await upstream.start()
    report = DemoReport()
    retry = Retry(max_attempts=3, initial_delay=0.05, max_delay=0.5, name="orders")
    breaker = CircuitBreaker(
        failure_rate=50, window=10, min_calls=5, open_for=open_for, half_open_calls=2, name="orders"
    )
    bulkhead = Bulkhead(max_concurrent=4, max_wait=0, name="orders")
    pipeline = Pipeline(retry=retry, breaker=breaker, bulkhead=bulkhead, timeout=Timeout(2.0))
    show = _Show(console, report, breaker)

    def on_event(event: ResilienceEvent) -> None:
        if event.kind == "retry.attempt":
            report.attempts += 1
        elif event.kind == "retry.delay":
            report.retries += 1
        elif event.kind == "circuit_breaker.transition":
            report.transitions.append(
                (_state(event.attributes["from"]), _state(event.attributes["to"]))
            )
        line = _describe(event)
        if line:
            show.say(line)

    unsubscribe = [p.events.subscribe(on_event) for p in (retry, breaker, bulkhead)]

    async with aiohttp.ClientSession(base_url) as session:

        async def get_order(order_id: int) -> Any:
            async with session.get(f"/orders/{order_id}") as response:
                if response.status >= 500:
                    raise UpstreamError(response.status)
                return await response.json()

        async def call(order_id: int) -> None:
            report.calls += 1
            try:
                await pipeline.call(get_order, order_id)
            except CircuitOpenError as exc:
                report.rejected_by_breaker += 1
                report.failed += 1
                show.say(
                    f"order {order_id}: rejected at once, breaker open (retry in {exc.retry_after:.1f}s)"
                )
            except BulkheadFullError:
                report.rejected_by_bulkhead += 1
                report.failed += 1
            except InterlinkError as exc:
                report.failed += 1
                show.say(f"order {order_id}: failed: {exc}")
            else:
                report.succeeded += 1
            report.upstream_requests = upstream.requests
            if show.live is not None:
                show.live.update(show.render())

        async def act(title: str, mode: Mode) -> None:
            show.act = title
            upstream.mode = mode
            show.say(f"[bold cyan]{title}[/]")
            await asyncio.sleep(0.5 * pace)

        async def run_acts() -> None:
            await act(
                "1. The upstream is flaky: one request in four gets a 503. Retries absorb it.",
                "flaky",
            )
            for order_id in range(1, 13):
                await call(order_id)
                await asyncio.sleep(0.05 * pace)
            await act("2. The upstream goes down. The breaker opens and calls fail fast.", "down")
            for order_id in range(13, 25):
                await call(order_id)
                await asyncio.sleep(0.05 * pace)
            await act(
                f"3. The upstream recovers. After {open_for:g}s the breaker lets probes through.",
                "healthy",
            )
            await asyncio.sleep(open_for)
            for order_id in range(25, 31):
                await call(order_id)
                await asyncio.sleep(0.05 * pace)
            await act(
                "4. A burst of 12 slow calls at once: the bulkhead admits 4, rejects the rest.",
                "slow",
            )
            await asyncio.gather(*(call(order_id) for order_id in range(31, 43)))
            show.say(
                f"bulkhead: admitted {12 - report.rejected_by_bulkhead}, rejected {report.rejected_by_bulkhead}"
            )
            show.act = "Done."

        try:
            if console.is_terminal:
                with Live(show.render(), console=console, refresh_per_second=8) as live:
                    show.live = live
                    await run_acts()
                    live.update(show.render())
            else:
                await run_acts()
        finally:
            for stop in unsubscribe:
                stop()
            await upstream.stop()
    report.upstream_requests = upstream.requests
    console.print(
        f"\n[bold]Summary:[/] {report.calls} calls, {report.succeeded} succeeded, "
        f"{report.retries} retries, breaker went "
        + " -> ".join(
            [report.transitions[0][0], *(to for _, to in report.transitions)]
            if report.transitions
            else ["nowhere"]
        )
        + f", {report.rejected_by_breaker} rejected by the breaker, "
        f"{report.rejected_by_bulkhead} by the bulkhead.",
        soft_wrap=True,
    )
    console.print("Next: read docs/resilience.md, or run `make test` and `make bench`.")
    return report
