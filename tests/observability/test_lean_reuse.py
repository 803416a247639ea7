"""The lean provider reuses an exported span only when nothing can tell: what callers and exporters see.

A span object nothing refers to after its export is kept for the next span
(``_Batcher._recycle``): the ingest path's two spans per webhook then cost no
allocation and no work for the garbage collector. These tests hold that a
reused span is indistinguishable from a new one, and that a span anything
still refers to (an exporter, the batch list, the application, a weak
reference) or that got more than its fields is never reused.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from interlink.observability._lean import LeanTracerProvider

HUGE = "600000"  # ms, or spans: never reached in a test, so only force_flush exports


@pytest.fixture(autouse=True)
def _export_on_flush_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", HUGE)
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512")


@pytest.fixture
def providers() -> Iterator[list[LeanTracerProvider]]:
    made: list[LeanTracerProvider] = []
    yield made
    for provider in made:
        provider.shutdown()


def described(span: ReadableSpan) -> dict[str, Any]:
    """What an exporter reads of a span, as plain values."""
    context = span.context
    assert context is not None
    return {
        "name": span.name,
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "parent": None if span.parent is None else span.parent.span_id,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
        "links": len(span.links),
        "status": span.status.status_code,
        "start": span.start_time,
        "end": span.end_time,
    }


class Reading(SpanExporter):
    """Reads every span it gets, as a real exporter does, and keeps what it read (not the spans)."""

    def __init__(self) -> None:
        self.read: list[dict[str, Any]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.read.extend(described(span) for span in spans)
        return SpanExportResult.SUCCESS


class KeepingTheBatch(SpanExporter):
    """Keeps each batch as it was handed over, to send later (as a queueing exporter might)."""

    def __init__(self) -> None:
        self.batches: list[Sequence[ReadableSpan]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(spans)
        return SpanExportResult.SUCCESS


def make(providers: list[LeanTracerProvider], exporter: SpanExporter) -> LeanTracerProvider:
    provider = LeanTracerProvider(exporter)
    providers.append(provider)
    return provider


def reusable_ids(provider: LeanTracerProvider) -> set[int]:
    return {id(span) for span in provider.batcher.reusable}


def end_ids(provider: LeanTracerProvider, count: int, name: str = "first") -> list[int]:
    """Make, end and export ``count`` spans; their object ids (no reference kept).

    Their attributes come through the API, so the export thread checks them first.
    """
    tracer = provider.get_tracer("reuse")
    spans = [
        tracer.start_span(f"{name}-{i}", attributes={"i": i, "seq": [i, i]}) for i in range(count)
    ]
    for span in spans:
        span.end()
    ids = [id(span) for span in spans]
    del spans, span
    assert provider.force_flush()
    return ids


def test_a_reused_span_exports_exactly_what_a_new_one_would(
    providers: list[LeanTracerProvider],
) -> None:
    exporter = Reading()
    provider = make(providers, exporter)
    first = end_ids(provider, 20)
    assert reusable_ids(provider) == set(first)  # every one: nothing referred to them
    tracer = provider.get_tracer("reuse")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        assert id(parent) in set(first)
        assert parent.is_recording()
        child = tracer.start_span("child", attributes={"k": "v"})
        assert child.is_recording()
        child.end()
    assert provider.force_flush()
    parent_read, child_read = exporter.read[-1], exporter.read[-2]
    assert child_read["name"] == "child"
    assert child_read["attributes"] == {"k": "v"}
    assert child_read["parent"] == parent_read["span_id"]
    assert child_read["trace_id"] == parent_read["trace_id"]
    assert parent_read["name"] == "parent"
    assert parent_read["parent"] is None
    assert parent_read["kind"] == SpanKind.SERVER
    assert parent_read["attributes"] == {}  # not the {"i": ..} the object had before
    for i, read in enumerate(exporter.read[:20]):
        assert read["attributes"] == {"i": i, "seq": (i, i)}
    assert parent_read["events"] == []
    assert parent_read["status"] == StatusCode.UNSET
    assert parent_read["start"] <= child_read["start"] <= child_read["end"] <= parent_read["end"]
    # New ids, not the ones the object had when it was exported before.
    earlier = {(read["trace_id"], read["span_id"]) for read in exporter.read[:20]}
    assert (parent_read["trace_id"], parent_read["span_id"]) not in earlier
    assert (child_read["trace_id"], child_read["span_id"]) not in earlier


def test_a_span_the_exporter_keeps_is_never_reused(providers: list[LeanTracerProvider]) -> None:
    exporter = InMemorySpanExporter()
    provider = make(providers, exporter)
    end_ids(provider, 10)
    assert reusable_ids(provider) == set()
    end_ids(provider, 10, name="second")
    kept = exporter.get_finished_spans()
    assert [span.name for span in kept] == [f"first-{i}" for i in range(10)] + [
        f"second-{i}" for i in range(10)
    ]
    assert len({span.context.span_id for span in kept if span.context is not None}) == 20


def test_an_exporter_keeping_the_batch_itself_prevents_any_reuse(
    providers: list[LeanTracerProvider],
) -> None:
    exporter = KeepingTheBatch()
    provider = make(providers, exporter)
    end_ids(provider, 10)
    assert reusable_ids(provider) == set()
    end_ids(provider, 10, name="second")
    [first, second] = exporter.batches
    assert [span.name for span in first] == [f"first-{i}" for i in range(10)]
    assert [span.name for span in second] == [f"second-{i}" for i in range(10)]


def test_a_span_the_application_still_holds_is_never_reused(
    providers: list[LeanTracerProvider],
) -> None:
    provider = make(providers, Reading())
    tracer = provider.get_tracer("reuse")
    held = tracer.start_span("held", attributes={"mine": True})
    held.end()
    assert provider.force_flush()
    assert id(held) not in reusable_ids(provider)
    end_ids(provider, 50, name="later")
    assert held.name == "held"  # type: ignore[attr-defined]
    assert held.attributes == {"mine": True}  # type: ignore[attr-defined]
    assert not held.is_recording()


def test_a_weakly_referenced_span_is_never_reused(providers: list[LeanTracerProvider]) -> None:
    provider = make(providers, Reading())
    span = provider.get_tracer("reuse").start_span("watched")
    span.end()
    watcher = weakref.ref(span)
    watched = id(span)
    del span
    assert provider.force_flush()
    assert watched not in reusable_ids(provider)
    assert watcher() is None  # freed, as without reuse: the reference never sees another span


def _status(span: trace.Span) -> None:
    span.set_status(Status(StatusCode.ERROR, "broken"))


def _event(span: trace.Span) -> None:
    span.add_event("happened")


def _exception(span: trace.Span) -> None:
    span.record_exception(ValueError("bad"))


def _invalid_key(span: trace.Span) -> None:
    span.set_attribute("", "dropped")


def _status_code(span: trace.Span) -> None:
    span.set_status(StatusCode.ERROR, "broken")


def _link(span: trace.Span) -> None:
    span.add_link(trace.SpanContext(1, 2, is_remote=True))


def _past_the_attribute_limit(span: trace.Span) -> None:
    for n in range(SpanLimits().max_span_attributes + 1):
        span.set_attribute(f"a{n}", n)  # the first one is dropped, and counted


MORE: dict[str, Callable[[trace.Span], None]] = {
    "status": _status,
    "status code": _status_code,
    "event": _event,
    "exception": _exception,
    "invalid key": _invalid_key,
    "link": _link,
    "past the attribute limit": _past_the_attribute_limit,
}


@pytest.mark.parametrize("more", sorted(MORE))
def test_a_span_that_got_more_than_its_fields_is_never_reused(
    more: str, providers: list[LeanTracerProvider]
) -> None:
    provider = make(providers, Reading())
    span = provider.get_tracer("reuse").start_span("more")
    MORE[more](span)
    span.end()
    more_id = id(span)
    del span
    assert provider.force_flush()
    assert more_id not in reusable_ids(provider)


@pytest.mark.parametrize(
    "options",
    [
        {"links": [Link(trace.SpanContext(1, 2, is_remote=True))]},
        {"record_exception": False},
        {"set_status_on_exception": False},
    ],
    ids=["links", "record_exception", "set_status_on_exception"],
)
def test_a_span_started_with_more_than_the_defaults_is_never_reused(
    options: dict[str, Any], providers: list[LeanTracerProvider]
) -> None:
    provider = make(providers, Reading())
    span = provider.get_tracer("reuse").start_span("options", **options)
    span.end()
    options_id = id(span)
    del span
    assert provider.force_flush()
    assert options_id not in reusable_ids(provider)


def test_reused_spans_stay_within_the_queue_bound(
    providers: list[LeanTracerProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")
    provider = make(providers, Reading())
    for _ in range(5):
        end_ids(provider, 64)
    assert len(provider.batcher.reusable) <= 64
