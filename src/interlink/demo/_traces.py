"""The demo's traces: kept in memory while it runs, and one webhook's trace drawn in its summary.

``interlink demo`` traces at a sampling ratio of 1.0 into a ``TraceKeeper``
(unless the config, or the application, set tracing up itself), so that the
summary can show what docs/observability.md promises: one webhook, one trace,
from the webhook's receipt through the publish and each processing attempt to
the provider's API calls. The keeper is a ``SpanExporter`` holding the latest
traces only (bounded in traces and in spans per trace), so a demo left running
for hours keeps a few thousand spans, not all of them. Written by hand: the
SDK's ``InMemorySpanExporter`` keeps every span and knows no traces.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

__all__ = ["TraceKeeper", "webhook_trace"]

# What a line of the drawn trace shows of a span's attributes, when it has them.
_SHOWN = (
    "interlink.webhook.outcome",
    "http.response.status_code",
    "http.request.resend_count",
    "interlink.message.delivery_count",
    "interlink.breaker.state",
)


class TraceKeeper(SpanExporter):
    """The spans of the ``max_traces`` latest active traces, at most ``max_spans`` each.

    A trace that gets a span (a webhook's message processed again) becomes the
    latest, so a retried webhook's trace outlives the webhooks received after it.
    """

    def __init__(self, *, max_traces: int = 500, max_spans: int = 64) -> None:
        self.max_traces = max_traces
        self.max_spans = max_spans
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._lock = threading.Lock()  # export runs in the provider's thread

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            traces = self._traces
            for span in spans:
                context = span.context
                if context is None:  # pragma: no cover - an ended span has its context
                    continue
                kept = traces.get(context.trace_id)
                if kept is None:
                    kept = traces[context.trace_id] = []
                    if len(traces) > self.max_traces:
                        traces.popitem(last=False)  # the least recently active trace goes
                else:
                    traces.move_to_end(context.trace_id)  # a retry keeps its webhook's trace
                if len(kept) < self.max_spans:
                    kept.append(span)
        return SpanExportResult.SUCCESS

    def traces(self) -> list[list[ReadableSpan]]:
        """The kept traces, least recently active first, each its spans as they ended."""
        with self._lock:
            return [list(spans) for spans in self._traces.values()]


def _score(spans: list[ReadableSpan]) -> tuple[int, int, int, int, int]:
    """How well a trace tells the story: a webhook, a retry, success at last, API calls, brevity."""
    webhook = any(s.kind is SpanKind.SERVER and s.parent is None for s in spans)
    attempts = sorted(
        (s for s in spans if s.kind is SpanKind.CONSUMER), key=lambda s: s.start_time or 0
    )
    succeeded = bool(attempts) and attempts[-1].status.status_code is not StatusCode.ERROR
    calls = any(s.kind is SpanKind.CLIENT for s in spans)
    return (int(webhook), int(len(attempts) > 1), int(succeeded), int(calls), -len(spans))


def webhook_trace(keeper: TraceKeeper, *, max_lines: int = 40) -> list[str]:
    """One webhook's trace as indented lines: the kept trace that tells the most, else ``[]``.

    The best is a webhook's (its SERVER span is the root) that was processed
    more than once (a retry), succeeded at last and called the provider's API;
    among equals, the shortest, then the latest. Each line: the span's name
    and kind, when it started after the root, how long it took, what it
    answered and whether it failed (the error's class).
    """
    traces = [t for t in keeper.traces() if _score(t)[0]]
    if not traces:
        return []
    spans = max(reversed(traces), key=_score)  # reversed: max keeps the latest of equals
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: s.start_time or 0)
    roots = children.get(None, [])
    origin = min(s.start_time or 0 for s in roots) if roots else 0
    trace_id = spans[0].context.trace_id if spans[0].context is not None else 0
    lines = [f"One webhook, one trace ({trace_id:032x}, {len(spans)} spans):"]

    def draw(span: ReadableSpan, depth: int) -> None:
        lines.append("  " * (depth + 1) + _line(span, origin))
        for child in children.get(span.context.span_id if span.context else None, []):
            draw(child, depth + 1)

    for root in roots:
        draw(root, 0)
    if len(lines) > max_lines + 1:
        hidden = len(lines) - 1 - max_lines
        lines = [*lines[: max_lines + 1], f"  ... and {hidden} more spans"]
    return lines


def _line(span: ReadableSpan, origin: int) -> str:
    start = span.start_time or origin
    parts = [span.name, span.kind.name.lower(), f"+{_duration(start - origin)}"]
    if span.end_time is not None:
        parts.append(f"took {_duration(span.end_time - start)}")
    attributes = span.attributes or {}
    parts.extend(
        f"{key.rsplit('.', 1)[-1]}={attributes[key]!s}" for key in _SHOWN if key in attributes
    )
    if span.status.status_code is StatusCode.ERROR:  # the class, not its module: lines stay short
        parts.append(f"ERROR {str(attributes.get('error.type', '')).rsplit('.', 1)[-1]}".rstrip())
    return "  ".join(parts)


def _duration(nanoseconds: int) -> str:
    seconds = nanoseconds / 1e9
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
