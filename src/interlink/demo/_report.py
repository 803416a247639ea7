"""What the service demo counted, and how it reads: the live view, progress lines, the summary.

``ServiceDemoReport`` is filled in by the demo a few times a second from the
parts' own counters (the provider's, the webhook receiver's ``SourceStats``,
the worker's ``HandlerStats``, the broker's ``QueueStats``, the clients'
resilience events, the internal service's store). ``render`` draws it as a
rich renderable for ``Live``; ``progress_line`` and ``summary`` are the plain
text used when stdout is not a terminal (and the summary on a terminal too).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["ServiceDemoReport", "progress_line", "render", "summary"]

_BREAKER_COLOURS = {"closed": "green", "open": "red", "half_open": "yellow", "forced_open": "red"}


@dataclass
class ServiceDemoReport:
    """The demo's story in numbers; read it while the demo runs or after."""

    elapsed: float = 0.0
    duration: float | None = None
    phase: str = "starting"
    # The provider's webhooks.
    sent: int = 0
    sent_bad_signatures: int = 0
    sent_unsupported: int = 0
    resent: int = 0
    undelivered: int = 0
    # The service's webhook receiver.
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Webhooks refused (401), by ``SignatureError.reason``."""
    # The queue and its worker.
    queue: str = ""
    waiting: int = 0
    """Messages in the queue: ready now or delayed for a retry."""
    in_flight: int = 0
    max_waiting: int = 0
    handled: int = 0
    queue_retries: int = 0
    """Messages whose handler failed and that the queue will try again later."""
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    """The dead letters' error messages (as far as read), counted."""
    # The provider's API, through the service's client.
    provider_requests: int = 0
    provider_answers: dict[str, int] = field(default_factory=dict)
    """The API's answers by kind: ok, error (503), rate_limited (429), slow, outage..."""
    client_retries: int = 0
    """Retries by the clients' pipelines (provider and internal)."""
    breaker: str = "closed"
    transitions: list[tuple[float, str, str]] = field(default_factory=list)
    """The provider client's breaker: (seconds in, from, to)."""
    # The internal service.
    forwarded: int = 0
    """Payments the internal service stored (each once)."""
    # Where to look.
    urls: dict[str, str] = field(default_factory=dict)
    admin_token: str = ""
    config_path: str = ""
    events: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    """The latest notable events, one line each."""
    trace: list[str] = field(default_factory=list)
    """One webhook's trace, drawn as lines at the end (``interlink.demo._traces``)."""

    @property
    def rejected_total(self) -> int:
        """Webhooks refused for their signature."""
        return sum(self.rejected.values())

    @property
    def provider_failures(self) -> int:
        """API requests that did not get a useful answer."""
        return sum(n for kind, n in self.provider_answers.items() if kind != "ok")

    def breaker_path(self) -> str:
        """``closed -> open -> half_open -> closed``, or ``closed (never moved)``."""
        if not self.transitions:
            return f"{self.breaker} (never moved)"
        return " -> ".join([self.transitions[0][1], *(to for _, _, to in self.transitions)])


def _clock(report: ServiceDemoReport) -> str:
    if report.duration is None:
        return f"{report.elapsed:.1f}s (Ctrl-C to stop)"
    return f"{report.elapsed:.1f}s of {report.duration:g}s"


def _grid(title: str, rows: list[tuple[str, str]]) -> Panel:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    for name, value in rows:
        table.add_row(name, value)
    return Panel(table, title=title, border_style="blue", padding=(0, 1))


def render(report: ServiceDemoReport, width: int = 120) -> RenderableType:
    """The live view: the phase, four panels of counters, the URLs, the latest events.

    The four panels sit side by side from ``width`` 110 on, two by two below that.
    """
    r = report
    answers = r.provider_answers
    colour = _BREAKER_COLOURS.get(r.breaker, "white")
    boxes = [
        _grid(
            "webhooks in",
            [
                ("sent by provider", str(r.sent)),
                ("accepted", f"[green]{r.accepted}[/]"),
                ("duplicates", str(r.duplicates)),
                ("bad signature", f"[red]{r.rejected_total}[/]"),
            ],
        ),
        _grid(
            f"queue {r.queue}",
            [
                ("waiting", str(r.waiting)),
                ("most waiting", str(r.max_waiting)),
                ("in flight", str(r.in_flight)),
                ("handled", f"[green]{r.handled}[/]"),
                ("retried", f"[yellow]{r.queue_retries}[/]"),
                ("dead letters", f"[red]{r.dead_letters}[/]"),
            ],
        ),
        _grid(
            "provider API (flaky)",
            [
                ("requests", str(r.provider_requests)),
                ("503 / 429", f"{answers.get('error', 0)} / {answers.get('rate_limited', 0)}"),
                ("too slow", str(answers.get("slow", 0))),
                ("outage 503s", str(answers.get("outage", 0))),
                ("client retries", f"[yellow]{r.client_retries}[/]"),
                ("breaker", f"[{colour}]{r.breaker}[/]"),
            ],
        ),
        _grid("internal service", [("payments stored", f"[green]{r.forwarded}[/]")]),
    ]
    per_row = 4 if width >= 110 else 2
    panels = Table.grid(expand=True, padding=(0, 1))
    for _ in range(per_row):
        panels.add_column(ratio=1)
    for start in range(0, len(boxes), per_row):
        panels.add_row(*boxes[start : start + per_row])
    urls = Table.grid(padding=(0, 2))
    urls.add_column(style="bold")
    urls.add_column(overflow="fold")
    for name, value in _url_rows(r):
        urls.add_row(name, value)
    return Group(
        Panel(
            Text(r.phase),
            title=f"interlink service demo - {_clock(r)}",
            title_align="left",
            border_style="cyan",
        ),
        panels,
        Panel(urls, title="try it while it runs", title_align="left", border_style="dim"),
        Panel(
            Text("\n".join(r.events) or " ", no_wrap=True, overflow="ellipsis"),
            title="events",
            title_align="left",
            border_style="dim",
        ),
    )


def _url_rows(r: ServiceDemoReport) -> list[tuple[str, str]]:
    rows = [
        ("webhooks", r.urls.get("webhooks", "")),
        ("health", f"{r.urls.get('health', '')}   (also /livez, /readyz)"),
        ("metrics", r.urls.get("metrics", "")),
        ("admin", f"curl -H 'Authorization: Bearer {r.admin_token}' {r.urls.get('admin', '')}"),
    ]
    return [(name, value) for name, value in rows if value]


def progress_line(report: ServiceDemoReport) -> str:
    """One line of counters, for a log or a pipe."""
    r = report
    return (
        f"[{r.elapsed:5.1f}s] webhooks: {r.sent} sent, {r.accepted} accepted, "
        f"{r.rejected_total} rejected, {r.duplicates} duplicates | queue: {r.waiting} waiting, "
        f"{r.handled} handled, {r.queue_retries} retried, {r.dead_letters} dead letters | "
        f"provider API: {r.provider_requests} requests, {r.provider_failures} failed, "
        f"{r.client_retries} client retries, breaker {r.breaker} | "
        f"internal: {r.forwarded} stored"
    )


def summary(report: ServiceDemoReport) -> list[str]:
    """The closing lines: what happened, and where to go next."""
    r = report
    answers = r.provider_answers
    failures = ", ".join(
        f"{label}: {answers[kind]}"
        for kind, label in (
            ("error", "503"),
            ("rate_limited", "429"),
            ("quota_exhausted", "429 quota spent"),
            ("slow", "too slow"),
            ("outage", "outage"),
        )
        if answers.get(kind)
    )
    reasons = "; ".join(f"{n} x {text}" for text, n in r.dead_letter_reasons.items())
    return [
        f"Summary after {r.elapsed:.1f}s:",
        f"- webhooks: the provider sent {r.sent}; the service accepted {r.accepted}, "
        f"rejected {r.rejected_total} with a bad signature (401) and answered "
        f"{r.duplicates} repeats as duplicates without storing them again.",
        f"- queue {r.queue}: {r.handled} payments handled; {r.queue_retries} times a handler "
        f"failed and the queue tried again later; {r.dead_letters} dead letters"
        + (f" ({reasons})" if reasons else "")
        + f"; {r.waiting + r.in_flight} left in the queue.",
        f"- provider API: {r.provider_failures} of {r.provider_requests} requests failed"
        + (f" ({failures})" if failures else "")
        + f"; the clients retried {r.client_retries} times; the breaker went "
        f"{r.breaker_path()}.",
        f"- internal service: {r.forwarded} payments stored, each once.",
        *r.trace,
        f"Next: the service's config is {r.config_path or 'examples/demo.yaml'} "
        "(read its comments); run it with `interlink serve -c FILE`; "
        "docs/configuration.md and docs/operations.md"
        + (
            "; send the traces to your collector with observability.tracing.exporter: otlp"
            " (docs/observability.md)."
            if r.trace
            else "."
        ),
    ]
