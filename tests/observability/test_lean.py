"""The lean tracer provider, as an exporter and a caller see it: what the SDK's ``TracerProvider``
with ``ParentBased(TraceIdRatioBased)`` sampling and a ``BatchSpanProcessor`` would do."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as context_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from interlink.messaging import MemoryBroker
from interlink.observability import MetricsRecorder, _lean, _tracing
from interlink.observability._lean import LeanSpan, LeanTracerProvider
from tests.polling import wait_until

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
LINKED = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)
OTHER = SpanContext(0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174, is_remote=False)
HUGE = "600000"  # ms: a schedule delay, batch or queue size that never triggers in a test
LOG = "interlink.observability"
W3C = TraceContextTextMapPropagator()

Make = Callable[..., LeanTracerProvider]
HELD: list[threading.Event] = []  # the gates of held exports, released after each test


@pytest.fixture
def lean() -> Iterator[Make]:
    """Makes ``LeanTracerProvider``s, and shuts every one down after the test."""
    made: list[LeanTracerProvider] = []

    def make(exporter: SpanExporter, **options: Any) -> LeanTracerProvider:
        provider = LeanTracerProvider(exporter, **options)
        made.append(provider)
        return provider

    yield make
    for gate in HELD:  # a test that failed while an export was held: let it go
        gate.set()
    HELD.clear()
    for provider in made:
        provider.shutdown()


def sdk_provider(
    exporter: SpanExporter, *, ratio: float = 1.0, limits: SpanLimits | None = None
) -> TracerProvider:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)), span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def bsp(
    monkeypatch: pytest.MonkeyPatch,
    *,
    delay: str | None = None,
    queue: str | None = None,
    batch: str | None = None,
) -> None:
    """Set the ``BatchSpanProcessor``'s variables, read when a provider is made."""
    for name, value in (
        ("OTEL_BSP_SCHEDULE_DELAY", delay),
        ("OTEL_BSP_MAX_QUEUE_SIZE", queue),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", batch),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


class Recorder(SpanExporter):
    """Keeps the names of each batch it is given; can fail, or hold an export until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []
        self.shutdowns = 0
        self.failures = 0  # how many next exports raise
        self.gate: threading.Event | None = None  # set up by hold: an export waits for it
        self.entered = threading.Event()

    def hold(self) -> threading.Event:
        """Make every export wait until the returned event is set."""
        self.gate = threading.Event()
        HELD.append(self.gate)
        return self.gate

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        with self.lock:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("the collector is down")
            self.batches.append([span.name for span in spans])
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shutdowns += 1

    def names(self) -> list[str]:
        with self.lock:
            return [name for batch in self.batches for name in batch]


def end_spans(provider: trace.TracerProvider, *names: str) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        tracer.start_span(name).end()


# -- the same calls, the same spans as the SDK's ---------------------------------------------
def scenario(provider: trace.TracerProvider) -> None:
    """A bit of everything the API offers, in the order an instrumented request would."""
    tracer = provider.get_tracer(
        "conformance", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.26.0"
    )
    root = tracer.start_span(
        "POST /orders",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/orders", "retries": [1, 2]},
    )
    with trace.use_span(root, end_on_exit=True):
        root.set_attribute("http.response.status_code", 500)
        root.set_attributes({"interlink.webhook.source": "shop", "flag": True, "ratio": 0.5})
        with tracer.start_as_current_span(
            "handle", links=[Link(LINKED, {"link.reason": "batch"})]
        ) as child:
            child.add_event("validated", {"fields": 3, "names": ("a", "b")})
            child.add_link(OTHER, {"follows": True})
            child.update_name("handle order")
            try:
                raise ValueError("bad amount")
            except ValueError as exc:
                child.record_exception(exc, {"order.id": "o-1"})
            child.set_status(StatusCode.ERROR, "bad amount")
        with (
            contextlib.suppress(KeyError),
            tracer.start_as_current_span("lookup", kind=SpanKind.CLIENT),
        ):
            raise KeyError("missing")
        with contextlib.suppress(RuntimeError), tracer.start_span("direct") as direct:
            direct.set_attribute("used", "as a context manager")
            raise RuntimeError("broke")
        with (
            contextlib.suppress(RuntimeError),
            tracer.start_span("quiet", record_exception=False, set_status_on_exception=False),
        ):
            raise RuntimeError("not recorded")
        producer = tracer.start_span("publish orders", kind=SpanKind.PRODUCER)
        producer.set_status(Status(StatusCode.OK))
        producer.set_status(StatusCode.ERROR, "too late")  # OK is final
        producer.end()
        root.set_status(Status(StatusCode.ERROR, "upstream failed"))
    remote = W3C.extract(
        {"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01", "tracestate": "vendor=abc,x=1"}
    )
    tracer.start_span("consume orders", remote, SpanKind.CONSUMER).end()


def described(found: Sequence[ReadableSpan]) -> list[dict[str, Any]]:
    """What an exporter sees of each span, without the ids and times that differ by run."""
    names = {span.context.span_id: span.name for span in found if span.context is not None}
    out = []
    for span in found:
        context = span.context
        assert context is not None
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.start_time <= span.end_time
        parent: object = None
        if span.parent is not None:
            parent = names.get(span.parent.span_id, (span.parent.span_id, span.parent.is_remote))
        events = []
        for event in span.events:
            attributes = dict(event.attributes or {})
            if "exception.stacktrace" in attributes:  # its frames differ: keep its last line
                attributes["exception.stacktrace"] = str(
                    attributes["exception.stacktrace"]
                ).splitlines()[-1]
            assert span.start_time <= event.timestamp <= span.end_time
            events.append((event.name, attributes))
        scope = span.instrumentation_scope
        assert scope is not None
        out.append(
            {
                "name": span.name,
                "kind": span.kind,
                "parent": parent,
                "flags": int(context.trace_flags),
                "trace_state": context.trace_state.to_header(),
                "attributes": dict(span.attributes or {}),
                "events": events,
                "links": [
                    (link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
                    for link in span.links
                ],
                "status": (span.status.status_code, span.status.description),
                "scope": (scope.name, scope.version, scope.schema_url),
                "resource": dict(span.resource.attributes),
                "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
            }
        )
    return out


def test_the_same_calls_export_the_same_spans_as_the_sdk(lean: Make) -> None:
    sdk_spans = InMemorySpanExporter()
    sdk = sdk_provider(sdk_spans)
    scenario(sdk)
    sdk.shutdown()
    lean_spans = InMemorySpanExporter()
    scenario(lean(lean_spans, batch=False))

    expected = described(sdk_spans.get_finished_spans())
    assert len(expected) == 7
    assert described(lean_spans.get_finished_spans()) == expected
    found = lean_spans.get_finished_spans()
    assert len({s.context.trace_id for s in found[:-1] if s.context is not None}) == 1
    assert found[-1].context is not None
    assert found[-1].context.trace_id == TRACE_ID


# -- sampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 1.0])
def test_a_new_trace_is_kept_as_the_sdks_ratio_sampler_decides(ratio: float, lean: Make) -> None:
    exporter = InMemorySpanExporter()
    tracer = lean(exporter, sampling_ratio=ratio, batch=False).get_tracer("sampling")
    sampler = ParentBased(TraceIdRatioBased(ratio))
    kept: set[int] = set()
    decisions = []
    for n in range(400):
        span = tracer.start_span(f"root {n}")
        context = span.get_span_context()
        assert context.is_valid
        sampled = sampler.should_sample(None, context.trace_id, "root").decision.is_sampled()
        decisions.append(sampled)
        assert span.is_recording() is sampled
        assert isinstance(span, NonRecordingSpan) is not sampled
        assert context.trace_flags.sampled is sampled
        assert context.trace_flags.random_trace_id  # a new trace's id is random
        if sampled:
            kept.add(context.trace_id)
        span.end()
    assert {s.context.trace_id for s in exporter.get_finished_spans() if s.context} == kept
    if 0 < ratio < 1:
        assert 0 < sum(decisions) < len(decisions)


def test_the_ratio_bound_is_the_sdks_to_the_last_trace_id(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    ratio = 0.25
    sampler = ParentBased(TraceIdRatioBased(ratio))
    bound = TraceIdRatioBased(ratio).bound
    trace_ids = [(1 << 64) | (bound - 1), (1 << 64) | bound, bound + 1, 7 << 64, (1 << 128) - 1]
    ids = iter(trace_ids)
    monkeypatch.setattr(_lean, "_getrandbits", lambda bits: next(ids) if bits == 128 else 0x1234)
    tracer = lean(InMemorySpanExporter(), sampling_ratio=ratio, batch=False).get_tracer("bound")
    for trace_id in trace_ids:
        span = tracer.start_span("root")
        assert span.get_span_context().trace_id == trace_id
        expected = sampler.should_sample(None, trace_id, "root").decision.is_sampled()
        assert span.is_recording() is expected, hex(trace_id)
        span.end()


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_zero_draw_never_becomes_an_invalid_id(
    ratio: float, monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    """All-zero ids are invalid (W3C): a random draw of 0 gives id 1 instead, sampled or not."""
    monkeypatch.setattr(_lean, "_getrandbits", lambda bits: 0)
    tracer = lean(InMemorySpanExporter(), sampling_ratio=ratio, batch=False).get_tracer("zero")
    root = tracer.start_span("root")
    child = tracer.start_span("child", trace.set_span_in_context(root))
    for span in (root, child):  # (a lean SpanContext's is_valid is set, not recomputed)
        context = span.get_span_context()
        assert (context.trace_id, context.span_id) == (1, 1)
    headers: dict[str, str] = {}
    if isinstance(root, _lean.UnsampledSpan):
        root.write_child(headers)  # the unsampled publish's traceparent
    else:
        assert isinstance(root, LeanSpan)
        made = root.start_child(root._tracer, "publish", trace.SpanKind.PRODUCER, {})
        assert made is not None
        assert made.get_span_context().span_id == 1
        made.end()
    if headers:
        assert headers["traceparent"] == f"00-{1:032x}-{1:016x}-02"
    child.end()
    root.end()


@pytest.mark.parametrize("ratio", [0.0, 1.0])
@pytest.mark.parametrize("flags", ["00", "01", "02", "03"])
def test_a_child_follows_its_remote_parents_sampled_flag(
    flags: str, ratio: float, lean: Make
) -> None:
    exporter = InMemorySpanExporter()
    tracer = lean(exporter, sampling_ratio=ratio, batch=False).get_tracer("remote")
    parent = W3C.extract({"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-{flags}"})
    sampled = bool(int(flags, 16) & TraceFlags.SAMPLED)
    sampler = ParentBased(TraceIdRatioBased(ratio))
    assert sampler.should_sample(parent, TRACE_ID, "child").decision.is_sampled() is sampled

    span = tracer.start_span("child", parent)
    context = span.get_span_context()
    assert context.is_valid
    assert context.trace_id == TRACE_ID
    assert context.span_id not in (0, PARENT_ID)
    assert int(context.trace_flags) == int(flags, 16)  # the parent's flags
    assert span.is_recording() is sampled
    carrier: dict[str, str] = {}
    propagate.inject(carrier, trace.set_span_in_context(span))
    assert carrier["traceparent"] == f"00-{TRACE_ID:032x}-{context.span_id:016x}-{flags}"
    span.end()
    exported = exporter.get_finished_spans()
    if not sampled:
        assert exported == ()
        return
    [child] = exported
    assert child.parent is not None
    assert child.parent.span_id == PARENT_ID
    assert child.parent.is_remote


def test_an_unsampled_trace_stays_unsampled_in_process_and_carries_its_context(
    lean: Make,
) -> None:
    exporter = InMemorySpanExporter()
    tracer = lean(exporter, sampling_ratio=0.0, batch=False).get_tracer("unsampled")
    sdk = sdk_provider(InMemorySpanExporter(), ratio=0.0)
    with sdk.get_tracer("unsampled").start_as_current_span("root") as sdk_root:
        sdk_carrier: dict[str, str] = {}
        propagate.inject(sdk_carrier)
    sdk.shutdown()

    with tracer.start_as_current_span("root") as root:
        with tracer.start_as_current_span("child") as child:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        root.set_attribute("ignored", True)
    root_context = root.get_span_context()
    child_context = child.get_span_context()
    for span, context in ((root, root_context), (child, child_context)):
        assert isinstance(span, NonRecordingSpan)
        assert not span.is_recording()
        assert context.is_valid
        assert not context.trace_flags.sampled
    assert child_context.trace_id == root_context.trace_id
    assert child_context.span_id != root_context.span_id
    assert carrier["traceparent"] == (
        f"00-{child_context.trace_id:032x}-{child_context.span_id:016x}"
        + sdk_carrier["traceparent"][-3:]  # the SDK's flags for an unsampled new trace
    )
    assert not int(carrier["traceparent"][-2:], 16) & TraceFlags.SAMPLED
    assert sdk_root.get_span_context().trace_flags == root_context.trace_flags
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("ratio", [-0.01, 1.01, math.nan, math.inf])
def test_a_sampling_ratio_outside_0_1_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="sampling_ratio"):
        LeanTracerProvider(InMemorySpanExporter(), sampling_ratio=ratio)


# -- propagation -------------------------------------------------------------------------------
def test_a_remote_parents_trace_state_is_carried_to_children_and_injected(lean: Make) -> None:
    exporter = InMemorySpanExporter()
    tracer = lean(exporter, batch=False).get_tracer("state")
    remote = W3C.extract(
        {
            "traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01",
            "tracestate": "vendor=abc,other=x1",
        }
    )
    carrier: dict[str, str] = {}
    with (
        tracer.start_as_current_span("child", remote) as child,
        tracer.start_as_current_span("grandchild") as grandchild,
    ):
        propagate.inject(carrier)
    for span in (child, grandchild):
        assert span.get_span_context().trace_state.to_header() == "vendor=abc,other=x1"
    assert carrier["tracestate"] == "vendor=abc,other=x1"
    assert isinstance(grandchild, LeanSpan)
    assert carrier["traceparent"] == _tracing.traceparent_of(
        grandchild.trace_id, grandchild.span_id, grandchild.flags
    )
    for span in exporter.get_finished_spans():
        assert span.context is not None
        assert span.context.trace_state.to_header() == "vendor=abc,other=x1"


@pytest.mark.parametrize(
    "parent", [None, "00", "01", "02", "03"], ids=["root", "00", "01", "02", "03"]
)
def test_traceparent_is_what_the_w3c_propagator_writes(parent: str | None, lean: Make) -> None:
    tracer = lean(InMemorySpanExporter(), batch=False).get_tracer("traceparent")
    context = None
    if parent is not None:
        context = W3C.extract({"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-{parent}"})
    span = tracer.start_span("span", context)
    if not span.is_recording():
        assert parent is not None
        assert not int(parent, 16) & TraceFlags.SAMPLED
        return  # an unsampled span is a NonRecordingSpan: the propagator writes its context
    assert isinstance(span, LeanSpan)
    carrier: dict[str, str] = {}
    W3C.inject(carrier, trace.set_span_in_context(span))
    mine: dict[str, str] = {}  # what _inject and start_publish write for a lean span
    _tracing.write_traceparent(mine, span.trace_id, span.span_id, span.flags, span.trace_state)
    assert mine == carrier
    assert W3C.extract(mine) is not None
    span.end()


CONTEXTS: dict[str, Callable[[], context_api.Context]] = {
    "nothing current": context_api.Context,
    "a remote parent": lambda: W3C.extract(
        {"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01", "tracestate": "vendor=abc"}
    ),
    "baggage only": lambda: baggage.set_baggage("tenant", "acme", context_api.Context()),
    "an application's span": lambda: trace.set_span_in_context(
        trace.get_tracer("app", "0.1").start_span("app work"), context_api.Context()
    ),
    "a parent and baggage": lambda: baggage.set_baggage(
        "tenant",
        "acme",
        W3C.extract({"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"}),
    ),
}


async def published_headers(context: context_api.Context) -> dict[str, str]:
    """The headers of a message published on the memory broker with ``context`` current."""
    broker = MemoryBroker()
    await broker.start()
    try:
        token = context_api.attach(context)
        try:
            await broker.publish("q", {"n": 1})
        finally:
            context_api.detach(token)
        async with broker.consume("q") as consumer:
            async for delivery in consumer:
                await delivery.ack()
                return dict(delivery.message.headers)
    finally:
        await broker.close()
    raise AssertionError("the message was not delivered")


@pytest.mark.parametrize("current", CONTEXTS)
async def test_a_publish_writes_the_headers_the_global_propagator_would(
    current: str, spans: InMemorySpanExporter
) -> None:
    context = CONTEXTS[current]()
    headers = await published_headers(context)
    [publish] = [s for s in spans.get_finished_spans() if s.name == "publish q"]
    assert publish.context is not None
    expected: dict[str, str] = {}
    propagate.inject(
        expected, trace.set_span_in_context(NonRecordingSpan(publish.context), context)
    )
    assert headers == expected
    assert publish.instrumentation_scope is not None
    assert publish.instrumentation_scope.name == "interlink"  # the library's, not the parent's
    parent = trace.get_current_span(context).get_span_context()
    assert (publish.parent.span_id if publish.parent else None) == (
        parent.span_id if parent.is_valid else None
    )


# -- the span's own rules ----------------------------------------------------------------------
STATUS_CALLS: dict[str, list[tuple[Any, ...]]] = {
    "ok is final": [(StatusCode.ERROR, "first"), (StatusCode.OK,), (Status(StatusCode.ERROR),)],
    "unset is ignored": [(Status(StatusCode.ERROR, "kept"),), (Status(StatusCode.UNSET),)],
    "unset code is ignored": [(StatusCode.ERROR, "kept"), (StatusCode.UNSET,)],
    "a description with a status object is ignored": [(Status(StatusCode.ERROR, "own"), "ignored")],
    "a code and its description": [(StatusCode.ERROR, "described")],
    "ok drops a description": [(StatusCode.OK, "not for ok")],
    "error after error": [(StatusCode.ERROR, "first"), (StatusCode.ERROR, "second")],
}


@pytest.mark.parametrize("calls", STATUS_CALLS)
def test_set_status_follows_the_sdks_rules(
    calls: str, lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    def final(provider: trace.TracerProvider, exporter: InMemorySpanExporter) -> Status:
        span = provider.get_tracer("status").start_span("span")
        for call in STATUS_CALLS[calls]:
            span.set_status(*call)
        span.end()
        [done] = exporter.get_finished_spans()
        return done.status

    sdk_spans = InMemorySpanExporter()
    sdk = sdk_provider(sdk_spans)
    with caplog.at_level(logging.WARNING):
        expected = final(sdk, sdk_spans)
    sdk_warned = "ignored" in caplog.text
    sdk.shutdown()
    caplog.clear()
    lean_spans = InMemorySpanExporter()
    with caplog.at_level(logging.WARNING):
        status = final(lean(lean_spans, batch=False), lean_spans)
    assert (status.status_code, status.description) == (
        expected.status_code,
        expected.description,
    )
    assert ("ignored" in caplog.text) is sdk_warned
    if calls == "ok is final":
        assert status.status_code is StatusCode.OK
    if calls == "a description with a status object is ignored":
        assert (status.description, sdk_warned) == ("own", True)


def test_a_span_ignores_changes_after_it_ended(
    monkeypatch: pytest.MonkeyPatch, lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    bsp(monkeypatch, delay=HUGE, batch=HUGE, queue=HUGE)
    exporter = InMemorySpanExporter()
    provider = lean(exporter)  # batched: the span is read after the changes below
    span = provider.get_tracer("ended").start_span("done", attributes={"k": "v"})
    span.end()
    assert not span.is_recording()
    changes: list[Callable[[], None]] = [
        lambda: span.set_attribute("k", "changed"),
        lambda: span.set_attributes({"new": 1}),
        lambda: span.add_event("late"),
        lambda: span.add_link(OTHER),
        lambda: span.update_name("renamed"),
        lambda: span.set_status(StatusCode.ERROR, "late"),
        lambda: span.record_exception(ValueError("late")),
        lambda: span.end(),
    ]
    for change in changes:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            change()
        assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert provider.force_flush()
    [done] = exporter.get_finished_spans()  # once, though end was called twice
    assert done.name == "done"
    assert dict(done.attributes or {}) == {"k": "v"}
    assert done.events == ()
    assert done.links == ()
    assert done.status.status_code is StatusCode.UNSET


class Gate:
    """Stops the first thread that reaches it until the test lets it go (``go``)."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()
        self.passed = False

    def __call__(self) -> None:
        if not self.passed:
            self.passed = True
            self.reached.set()
            assert self.go.wait(10), "the test never let the writer go"


class SlowKey(str):
    """An attribute key whose first hash waits at a gate: a writer caught mid-write."""

    gate: Gate

    def __hash__(self) -> int:
        self.gate()
        return str.__hash__(self)


class SlowAttributes(Mapping[str, Any]):
    """Attributes whose first value read waits at a gate: a writer caught mid-write."""

    def __init__(self, gate: Gate, values: dict[str, Any]) -> None:
        self.gate = gate
        self.given = values

    def __getitem__(self, key: str) -> Any:
        self.gate()
        return self.given[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)


class ReadsWhileWritten(SpanExporter):
    """Reads each span's attributes, letting a held writer finish after the first one is read."""

    def __init__(self, gate: Gate, writer: threading.Thread) -> None:
        self.gate = gate
        self.writer = writer
        self.read: list[tuple[str, Any]] = []
        self.exported: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            for n, item in enumerate((span.attributes or {}).items()):
                if n == 0:
                    self.gate.go.set()
                    self.writer.join(10)
                    assert not self.writer.is_alive()
                self.read.append(item)
            self.exported.append(span.name)
        return SpanExportResult.SUCCESS


@pytest.mark.parametrize("how", ["set_attribute", "set_attributes"])
def test_a_change_racing_the_end_neither_changes_nor_breaks_the_export(
    how: str, lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    # The API asks spans to be safe for concurrent use: a thread that set an attribute just as
    # another ended the span must not change the attributes under the exporter reading them
    # (the batch would fail and be lost). The change is not exported, as the SDK refuses it.
    gate = Gate()
    span: Any = None
    if how == "set_attribute":
        key = SlowKey("late")
        key.gate = gate

        def write() -> None:
            span.set_attribute(key, 1)

    else:

        def write() -> None:
            span.set_attributes(SlowAttributes(gate, {"late": 1, "later": 2}))

    writer = threading.Thread(target=write)
    exporter = ReadsWhileWritten(gate, writer)
    provider = lean(exporter, batch=False)  # exported in the ending thread, as it ends
    span = provider.get_tracer("race").start_span("raced", attributes={"a": 1, "b": 2})
    with caplog.at_level(logging.WARNING):
        writer.start()
        assert gate.reached.wait(10)  # the writer is past the check that the span runs
        span.end()
    writer.join(10)
    assert exporter.exported == ["raced"]
    assert exporter.read == [("a", 1), ("b", 2)]
    assert dict(span.attributes) == {"a": 1, "b": 2}  # what was exported
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_two_threads_setting_attributes_at_once_both_keep_theirs(lean: Make) -> None:
    # The first writer is held mid-write while the second sets its own attribute.
    gate = Gate()
    key = SlowKey("first")
    key.gate = gate
    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False)
    span = provider.get_tracer("race").start_span("set at once", attributes={"a": 1})
    writer = threading.Thread(target=span.set_attribute, args=(key, 1))
    writer.start()
    assert gate.reached.wait(10)
    span.set_attribute("second", 2)
    gate.go.set()
    writer.join(10)
    assert not writer.is_alive()
    span.end()
    [done] = exporter.get_finished_spans()
    assert dict(done.attributes or {}) == {"a": 1, "second": 2, "first": 1}


class KeepsAttributes(SpanExporter):
    """Notes, for each span, whether its attributes are still the dict the test kept."""

    def __init__(self) -> None:
        self.kept: object = None
        self.same: list[bool] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.same += [span._attributes is self.kept for span in spans]  # type: ignore[attr-defined]
        return SpanExportResult.SUCCESS


@pytest.mark.parametrize("held", [False, True])
def test_only_a_span_something_else_still_holds_is_exported_with_a_copy_of_its_attributes(
    held: bool, monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    # The copy keeps the export safe from a late change; a span nothing holds (the ingest
    # path's) cannot get one, and is not copied.
    bsp(monkeypatch, delay=HUGE, batch=HUGE, queue=HUGE)
    exporter = KeepsAttributes()
    provider = lean(exporter)
    span = provider.get_tracer("held").start_span("held or not", attributes={"a": 1})
    exporter.kept = span._attributes  # type: ignore[attr-defined]
    span.end()
    if not held:
        del span
    assert provider.force_flush()
    assert exporter.same == [not held]


def test_an_ok_status_set_while_another_thread_sets_an_error_stays_final(lean: Make) -> None:
    # The first thread is held as it reads the current status; the second sets OK meanwhile.
    gate = Gate()

    class HeldStatus(Status):
        @property
        def status_code(self) -> StatusCode:
            gate()
            return super().status_code

    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False)
    span = provider.get_tracer("race").start_span("set at once")
    span._status = HeldStatus(StatusCode.ERROR, "first")  # type: ignore[attr-defined]
    first = threading.Thread(target=span.set_status, args=(StatusCode.ERROR, "late"))
    first.start()
    assert gate.reached.wait(10)
    span.set_status(Status(StatusCode.OK))
    gate.go.set()
    first.join(10)
    assert not first.is_alive()
    span.end()
    [done] = exporter.get_finished_spans()
    assert done.status.status_code is StatusCode.OK


def test_a_span_ended_by_two_threads_at_once_is_exported_once(
    monkeypatch: pytest.MonkeyPatch, lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    # The first thread to end it is held where it reads the clock; the second ends it meanwhile.
    gate = Gate()
    clock = _lean._time_ns

    def held_clock() -> int:
        gate()
        return clock()

    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False)
    span = provider.get_tracer("race").start_span("ended twice")
    monkeypatch.setattr(_lean, "_time_ns", held_clock)
    first = threading.Thread(target=span.end)
    with caplog.at_level(logging.WARNING):
        first.start()
        assert gate.reached.wait(10)
        span.end()
        gate.go.set()
        first.join(10)
    assert not first.is_alive()
    assert [s.name for s in exporter.get_finished_spans()] == ["ended twice"]
    assert [r.getMessage() for r in caplog.records if r.name == LOG] == [
        "Calling end() on an ended span."
    ]


@pytest.mark.parametrize("what", ["event", "link"])
def test_two_threads_adding_a_spans_first_events_at_once_both_keep_theirs(
    what: str, monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    # The first thread is held as it makes the span's list; the second adds its own meanwhile.
    gate = Gate()

    class HeldList(BoundedList):  # type: ignore[type-arg]
        def __init__(self, maxlen: int | None) -> None:
            gate()
            super().__init__(maxlen)

    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False)
    span = provider.get_tracer("race").start_span("added to at once")
    monkeypatch.setattr(_lean, "BoundedList", HeldList)

    def add(n: int) -> None:
        if what == "event":
            span.add_event(f"event {n}")
        else:
            span.add_link(SpanContext(TRACE_ID, PARENT_ID + n, is_remote=True))

    first = threading.Thread(target=add, args=(1,))
    first.start()
    assert gate.reached.wait(10)
    add(2)
    gate.go.set()
    first.join(10)
    assert not first.is_alive()
    span.end()
    [done] = exporter.get_finished_spans()
    if what == "event":
        assert sorted(event.name for event in done.events) == ["event 1", "event 2"]
    else:
        assert sorted(link.context.span_id for link in done.links) == [PARENT_ID + 1, PARENT_ID + 2]


def limited_span(
    provider: trace.TracerProvider,
    exporter: InMemorySpanExporter,
    given: dict[str, Any],
    how: str,
) -> ReadableSpan:
    """One span given ``given`` at start, one by one, or all at once (``how``); the one exported."""
    span = provider.get_tracer("limits").start_span(
        "limited", attributes=given if how == "at start" else None
    )
    if how == "set_attribute":
        for key, value in given.items():
            span.set_attribute(key, value)
    elif how == "set_attributes":
        span.set_attributes(given)
    span.end()
    [done] = exporter.get_finished_spans()
    return done


@pytest.mark.parametrize("how", ["at start", "set_attribute", "set_attributes"])
def test_span_limits_drop_and_count_attributes_beyond_the_maximum(how: str, lean: Make) -> None:
    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False, limits=SpanLimits(max_span_attributes=2))
    given = {"a": 1, "b": 2, "c": 3}
    done = limited_span(provider, exporter, given, how)
    assert len(done.attributes or {}) == 2
    assert set(done.attributes or {}) < set(given)
    assert done.dropped_attributes == 1


def test_a_kept_attribute_may_be_set_again_on_a_full_span(lean: Make) -> None:
    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False, limits=SpanLimits(max_span_attributes=2))
    span = provider.get_tracer("limits").start_span("limited", attributes={"a": 1, "b": 2})
    span.set_attribute("a", 10)
    span.end()
    [done] = exporter.get_finished_spans()
    assert dict(done.attributes or {}) == {"a": 10, "b": 2}
    assert done.dropped_attributes == 0


@pytest.mark.parametrize("limit", [2, 0, SpanLimits.UNSET], ids=["at most 2", "none", "no limit"])
@pytest.mark.parametrize("how", ["at start", "set_attribute", "set_attributes"])
def test_a_span_keeps_the_attributes_the_sdk_keeps(how: str, limit: int, lean: Make) -> None:
    # Without a limit, more than the default one (128).
    given = {f"key {n}": n for n in range(130 if limit == SpanLimits.UNSET else 3)}

    def kept(provider: trace.TracerProvider, exporter: InMemorySpanExporter) -> dict[str, Any]:
        done = limited_span(provider, exporter, given, how)
        return {"kept": dict(done.attributes or {}), "dropped": done.dropped_attributes}

    limits = SpanLimits(max_span_attributes=limit)
    sdk_spans, lean_spans = InMemorySpanExporter(), InMemorySpanExporter()
    sdk = sdk_provider(sdk_spans, limits=limits)
    expected = kept(sdk, sdk_spans)
    sdk.shutdown()
    assert kept(lean(lean_spans, batch=False, limits=limits), lean_spans) == expected


def on_both(
    lean: Make, record: Callable[[trace.Span], None], limits: SpanLimits | None = None
) -> tuple[ReadableSpan, ReadableSpan]:
    """The span ``record`` fills, as the SDK exports it and as the lean provider does."""
    found: list[ReadableSpan] = []
    makers: list[Callable[[InMemorySpanExporter], Any]] = [
        lambda exporter: sdk_provider(exporter, limits=limits),
        lambda exporter: lean(exporter, batch=False, limits=limits),
    ]
    for make in makers:
        exporter = InMemorySpanExporter()
        provider = make(exporter)
        span = provider.get_tracer("both").start_span("span")
        record(span)
        span.end()
        [done] = exporter.get_finished_spans()
        found.append(done)
        provider.shutdown()
    return found[0], found[1]


def test_an_attribute_value_is_the_one_given_when_it_was_set(lean: Make) -> None:
    def record(span: trace.Span) -> None:
        tags = ["a"]
        span.set_attribute("tags", tags)
        tags.append("added after")

    sdk, mine = on_both(lean, record)
    assert dict(sdk.attributes or {}) == {"tags": ("a",)}
    assert dict(mine.attributes or {}) == dict(sdk.attributes or {})


def test_an_invalid_attribute_key_is_dropped_as_the_sdk_drops_it(lean: Make) -> None:
    def record(span: trace.Span) -> None:
        span.set_attribute("", 1)
        span.set_attribute("ok", 2)

    sdk, mine = on_both(lean, record)
    assert (dict(sdk.attributes or {}), sdk.dropped_attributes) == ({"ok": 2}, 1)
    assert (dict(mine.attributes or {}), mine.dropped_attributes) == ({"ok": 2}, 1)


def test_events_beyond_the_maximum_are_capped(lean: Make) -> None:
    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False, limits=SpanLimits(max_events=2))
    span = provider.get_tracer("limits").start_span("eventful")
    for n in range(5):
        span.add_event(f"event {n}")
    span.end()
    [done] = exporter.get_finished_spans()
    assert len(done.events) == 2


def test_events_beyond_the_maximum_are_the_ones_the_sdk_keeps_and_counts(lean: Make) -> None:
    def seen(provider: trace.TracerProvider, exporter: InMemorySpanExporter) -> tuple[Any, ...]:
        span = provider.get_tracer("limits").start_span("eventful")
        for n in range(5):
            span.add_event(f"event {n}")
        span.end()
        [done] = exporter.get_finished_spans()
        return [event.name for event in done.events], done.dropped_events

    limits = SpanLimits(max_events=2)
    sdk_spans, lean_spans = InMemorySpanExporter(), InMemorySpanExporter()
    sdk = sdk_provider(sdk_spans, limits=limits)
    expected = seen(sdk, sdk_spans)
    sdk.shutdown()
    assert seen(lean(lean_spans, batch=False, limits=limits), lean_spans) == expected


def test_invalid_links_are_left_out_as_the_sdk_leaves_them_out(lean: Make) -> None:
    def links(provider: trace.TracerProvider, exporter: InMemorySpanExporter) -> list[int]:
        span = provider.get_tracer("links").start_span(
            "linked", links=[Link(INVALID_SPAN_CONTEXT), Link(LINKED)]
        )
        span.add_link(INVALID_SPAN_CONTEXT)
        span.add_link(OTHER)
        span.end()
        [done] = exporter.get_finished_spans()
        return [link.context.span_id for link in done.links]

    sdk_spans, lean_spans = InMemorySpanExporter(), InMemorySpanExporter()
    sdk = sdk_provider(sdk_spans)
    expected = links(sdk, sdk_spans)
    sdk.shutdown()
    assert expected == [LINKED.span_id, OTHER.span_id]
    assert links(lean(lean_spans, batch=False), lean_spans) == expected


# -- batching ----------------------------------------------------------------------------------
def test_a_full_batch_is_exported_by_the_thread_without_a_flush(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch="8")
    exporter = Recorder()
    provider = lean(exporter)
    first = [f"span {n}" for n in range(8)]
    end_spans(provider, *first)
    wait_until(lambda: len(exporter.names()) == 8, "exported")
    second = [f"span {n}" for n in range(8, 16)]
    end_spans(provider, *second)
    wait_until(lambda: len(exporter.names()) == 16, "exported")
    assert exporter.batches == [first, second]


def test_the_schedule_delay_exports_a_partial_batch(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay="20")
    exporter = Recorder()
    provider = lean(exporter)
    end_spans(provider, "a", "b", "c")
    wait_until(lambda: len(exporter.names()) == 3, "exported")
    assert exporter.names() == ["a", "b", "c"]
    end_spans(provider, "d")
    wait_until(lambda: len(exporter.names()) == 4, "exported again")


def test_spans_ended_from_many_threads_are_each_exported_once(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay="5", batch="64", queue="100000")
    exporter = Recorder()
    provider = lean(exporter)
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait()
        end_spans(provider, *(f"{worker}/{n}" for n in range(500)))

    workers = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert provider.force_flush()
    names = exporter.names()
    assert sorted(names) == sorted(f"{w}/{n}" for w in range(8) for n in range(500))
    assert all(len(batch) <= 64 for batch in exporter.batches)
    assert provider.dropped_spans == 0


def test_force_flush_exports_everything_now(monkeypatch: pytest.MonkeyPatch, lean: Make) -> None:
    bsp(monkeypatch, delay=HUGE, batch=HUGE, queue=HUGE)
    exporter = Recorder()
    provider = lean(exporter)
    names = [f"span {n}" for n in range(5)]
    end_spans(provider, *names)
    assert provider.force_flush()
    assert exporter.names() == names
    assert provider.force_flush()
    assert exporter.names() == names


def test_force_flush_returns_once_an_export_under_way_is_done(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch="1")
    exporter = Recorder()
    gate = exporter.hold()
    provider = lean(exporter)
    end_spans(provider, "in flight")
    assert exporter.entered.wait(10)  # the thread took the span and is exporting it
    release = threading.Timer(0.2, gate.set)
    release.start()
    try:
        assert provider.force_flush()
        assert exporter.names() == ["in flight"]
    finally:
        gate.set()
        release.cancel()


@pytest.mark.parametrize("batch", [True, False])
def test_shutdown_exports_the_rest_and_shuts_the_exporter_down_once(
    batch: bool, monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch=HUGE, queue=HUGE)
    before = set(threading.enumerate())
    exporter = Recorder()
    provider = lean(exporter, batch=batch)
    tracer = provider.get_tracer("shutdown")
    open_span = tracer.start_span("open at shutdown")
    end_spans(provider, "a", "b", "c")
    started = set(threading.enumerate()) - before
    provider.shutdown()
    assert exporter.names() == ["a", "b", "c"]
    assert exporter.shutdowns == 1
    assert not any(thread.is_alive() for thread in started)
    open_span.end()
    end_spans(provider, "after")
    provider.shutdown()
    provider.force_flush()
    assert exporter.names() == ["a", "b", "c"]
    assert exporter.shutdowns == 1


def test_a_full_queue_drops_the_oldest_counts_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    bsp(monkeypatch, delay=HUGE, queue="4", batch="4")
    exporter = Recorder()
    gate = exporter.hold()
    provider = lean(exporter)
    taken = [f"taken {n}" for n in range(4)]
    queued = [f"queued {n}" for n in range(4)]
    with caplog.at_level(logging.WARNING, LOG):
        end_spans(provider, *taken)
        assert exporter.entered.wait(10)  # the thread holds those four, the queue is empty
        end_spans(provider, *queued)
        assert provider.dropped_spans == 0
        end_spans(provider, "dropped 1", "dropped 2", "dropped 3")
        assert provider.dropped_spans == 3
    warnings = [r for r in caplog.records if r.name == LOG and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "full" in warnings[0].getMessage()
    gate.set()
    assert provider.force_flush()
    # As in the SDK's BatchSpanProcessor, the oldest queued spans gave way to the newest.
    assert exporter.names() == [*taken, "queued 3", "dropped 1", "dropped 2", "dropped 3"]


def spans_metric() -> dict[str, float]:
    """``interlink_tracing_spans_total`` as ``MetricsRecorder`` serves it: outcome -> count."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsRecorder())
    text = generate_latest(registry).decode()
    [family] = [
        f for f in text_string_to_metric_families(text) if f.name == "interlink_tracing_spans"
    ]
    return {sample.labels["outcome"]: sample.value for sample in family.samples}


class Refuses(SpanExporter):
    """Answers FAILURE for its first ``refusals`` exports, SUCCESS after."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.refusals:
            self.refusals -= 1
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def test_the_metrics_count_spans_exported_refused_and_failed(lean: Make) -> None:
    assert spans_metric() == {}  # no provider of ours: no figures
    refusing = lean(Refuses(refusals=2), batch=False)
    trace.set_tracer_provider(refusing)
    end_spans(refusing, "refused 1", "refused 2", "taken 1", "taken 2", "taken 3")
    assert spans_metric() == {"exported": 3, "failed": 2, "dropped": 0}


def test_the_metrics_count_spans_lost_to_an_exporter_that_raises_and_to_a_full_queue(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, queue="4", batch="4")
    exporter = Recorder()
    exporter.failures = 1  # the first batch raises
    gate = exporter.hold()
    provider = lean(exporter)
    trace.set_tracer_provider(provider)
    end_spans(provider, *(f"raised {n}" for n in range(4)))
    assert exporter.entered.wait(10)  # the thread holds those four, the queue is empty
    end_spans(provider, *(f"kept {n}" for n in range(4)), "dropped 1", "dropped 2")
    assert spans_metric() == {"exported": 0, "failed": 0, "dropped": 2}
    gate.set()
    assert provider.force_flush()
    assert spans_metric() == {"exported": 4, "failed": 4, "dropped": 2}


@pytest.mark.parametrize(
    "variable",
    ["OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
)
@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5"])
def test_a_bad_batching_variable_is_warned_about_and_ignored(
    variable: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    lean: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bsp(monkeypatch)
    monkeypatch.setenv(variable, value)
    exporter = Recorder()
    with caplog.at_level(logging.WARNING, LOG):
        provider = lean(exporter)
    [warning] = [r for r in caplog.records if r.name == LOG]
    assert warning.levelno == logging.WARNING
    assert variable in warning.getMessage()
    assert repr(value) in warning.getMessage() or value in warning.getMessage()
    end_spans(provider, "still traced")
    assert provider.force_flush()
    assert exporter.names() == ["still traced"]


def test_a_bad_queue_size_falls_back_to_2048(monkeypatch: pytest.MonkeyPatch, lean: Make) -> None:
    bsp(monkeypatch, delay=HUGE, queue="abc", batch="1")
    exporter = Recorder()
    gate = exporter.hold()
    provider = lean(exporter)
    end_spans(provider, "taken")
    assert exporter.entered.wait(10)  # the thread holds it: the queue is empty
    end_spans(provider, *(f"queued {n}" for n in range(2048)))
    assert provider.dropped_spans == 0
    end_spans(provider, "dropped")
    assert provider.dropped_spans == 1
    gate.set()
    assert provider.force_flush()
    assert len(exporter.names()) == 2049


def test_a_bad_batch_size_falls_back_to_512(monkeypatch: pytest.MonkeyPatch, lean: Make) -> None:
    bsp(monkeypatch, delay=HUGE, batch="-1")
    exporter = Recorder()
    provider = lean(exporter)
    end_spans(provider, *(f"span {n}" for n in range(512)))
    wait_until(lambda: bool(exporter.batches), "exported")
    assert len(exporter.batches[0]) == 512


# -- exporters ----------------------------------------------------------------------------------
def test_an_exporter_that_raises_is_logged_and_later_batches_still_go(
    monkeypatch: pytest.MonkeyPatch, lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    bsp(monkeypatch, delay=HUGE, batch="1")
    exporter = Recorder()
    exporter.failures = 1
    provider = lean(exporter)

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == LOG and r.levelno >= logging.ERROR]

    with caplog.at_level(logging.ERROR, LOG):
        end_spans(provider, "lost")
        wait_until(lambda: bool(failures()), "logged")
        end_spans(provider, "kept")
        wait_until(lambda: exporter.names() == ["kept"], "exported")
    [record] = failures()
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError


def test_an_exporter_that_raises_does_not_reach_the_caller_unbatched(
    lean: Make, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = Recorder()
    exporter.failures = 1
    provider = lean(exporter, batch=False)
    with caplog.at_level(logging.ERROR, LOG):
        end_spans(provider, "lost")
    assert [r.exc_info[0] for r in caplog.records if r.name == LOG and r.exc_info] == [RuntimeError]
    end_spans(provider, "kept")
    assert exporter.names() == ["kept"]


def _sdk_batch(exporter: SpanExporter) -> trace.TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda e, lean: sdk_provider(e), id="sdk simple"),
        pytest.param(lambda e, lean: _sdk_batch(e), id="sdk batch"),
        pytest.param(lambda e, lean: lean(e, batch=False), id="lean unbatched"),
        pytest.param(lambda e, lean: lean(e), id="lean batched"),
    ],
)
def test_an_export_runs_with_instrumentation_suppressed(
    make: Callable[[SpanExporter, Make], trace.TracerProvider], lean: Make
) -> None:
    # An instrumented HTTP client in an OTLP exporter must not trace its own export calls
    # (each export would make spans to export, forever): the SDK's processors say so.
    suppressed: list[object] = []

    class Watching(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            suppressed.append(context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            return SpanExportResult.SUCCESS

    provider = make(Watching(), lean)
    end_spans(provider, "watched")
    provider.force_flush()  # type: ignore[attr-defined]
    provider.shutdown()  # type: ignore[attr-defined]
    assert suppressed == [True]


def test_an_exporter_gets_readable_spans_built_only_if_it_reads_them(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch=HUGE, queue=HUGE)
    copies: list[str] = []
    constructor = ReadableSpan.__init__

    def counting(self: ReadableSpan, *args: Any, **kwargs: Any) -> None:
        copies.append(kwargs.get("name", args[0] if args else ""))
        constructor(self, *args, **kwargs)

    monkeypatch.setattr(ReadableSpan, "__init__", counting)
    lengths: list[int] = []
    read: list[Any] = []

    class Counting(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lengths.append(len(spans))
            return SpanExportResult.SUCCESS

    class Reading(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            read.extend([list(spans), spans[0], spans[-1], spans[1:]])
            return SpanExportResult.SUCCESS

    counted = lean(Counting())
    end_spans(counted, "a", "b", "c")
    assert counted.force_flush()
    assert lengths == [3]
    assert copies == []  # an exporter that only counts never has a span copied for it

    reading = lean(Reading())
    tracer = reading.get_tracer("reading")
    with tracer.start_as_current_span("a") as a:
        tracer.start_span("b", attributes={"n": 1}).end()
        tracer.start_span("c").end()
    assert reading.force_flush()
    every, first, last, rest = read
    assert [span.name for span in every] == ["b", "c", "a"]
    assert (first.name, last.name, [span.name for span in rest]) == ("b", "a", ["c", "a"])
    for span in [*every, first, last, *rest]:
        assert isinstance(span, ReadableSpan)
        printed = json.loads(span.to_json())
        assert printed["name"] == span.name
        assert printed["context"]["span_id"] == f"0x{span.context.span_id:016x}"
    assert json.loads(first.to_json())["parent_id"] == f"0x{a.get_span_context().span_id:016x}"
    assert json.loads(first.to_json())["attributes"] == {"n": 1}


def test_the_console_exporter_prints_the_lazy_batch(lean: Make) -> None:
    out = io.StringIO()
    provider = lean(ConsoleSpanExporter(out=out))
    tracer = provider.get_tracer("console")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child"):
        pass
    assert provider.force_flush()
    text, decoder = out.getvalue(), json.JSONDecoder()
    printed: list[dict[str, Any]] = []
    at = 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        span, at = decoder.raw_decode(text, at)
        printed.append(span)
    assert [span["name"] for span in printed] == ["child", "parent"]
    assert printed[0]["parent_id"] == f"0x{parent.get_span_context().span_id:016x}"
    assert printed[1]["parent_id"] is None


def test_the_otlp_encoder_encodes_the_lazy_batch(lean: Make) -> None:
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    requests: list[Any] = []

    class Encoding(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            requests.append(encoder.encode_spans(spans))  # what the OTLP exporters send
            return SpanExportResult.SUCCESS

    provider = lean(Encoding(), resource=Resource.create({"service.name": "encoded"}))
    tracer = provider.get_tracer("otlp", "9.9")
    with (
        tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent,
        tracer.start_as_current_span("child", attributes={"n": 1}) as child,
    ):
        child.add_event("step")
    assert provider.force_flush()
    [request] = requests
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "encoded"
    [scope_spans] = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("otlp", "9.9")
    encoded = {span.name: span for span in scope_spans.spans}
    assert list(encoded) == ["child", "parent"]
    parent_context, child_context = parent.get_span_context(), child.get_span_context()
    assert encoded["child"].parent_span_id == parent_context.span_id.to_bytes(8, "big")
    assert encoded["parent"].parent_span_id == b""
    assert encoded["child"].span_id == child_context.span_id.to_bytes(8, "big")
    assert encoded["child"].trace_id == parent_context.trace_id.to_bytes(16, "big")
    assert [event.name for event in encoded["child"].events] == ["step"]


# -- processes -----------------------------------------------------------------------------------
FORK = """
import os
os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from interlink.observability._lean import LeanTracerProvider

exporter = InMemorySpanExporter()
provider = LeanTracerProvider(exporter)
tracer = provider.get_tracer("fork")
tracer.start_span("ended in the parent").end()
pid = os.fork()
if pid == 0:
    tracer.start_span("ended in the child").end()
    provider.force_flush()
    print("child:", ",".join(s.name for s in exporter.get_finished_spans()), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
provider.shutdown()
print("parent:", ",".join(s.name for s in exporter.get_finished_spans()), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_exports_only_its_own_spans() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == [
        "child: ended in the child",
        "parent: ended in the parent",
    ]


@pytest.mark.parametrize(
    "parent",
    ["none", "an unsampled remote parent"],
)
async def test_an_unsampled_publish_writes_the_headers_the_global_propagator_would(
    parent: str, lean: Make
) -> None:
    exporter = InMemorySpanExporter()
    trace.set_tracer_provider(lean(exporter, batch=False, sampling_ratio=0.0))
    context = (
        context_api.Context()
        if parent == "none"
        else W3C.extract(
            {"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-00", "tracestate": "v=1"}
        )
    )
    headers = await published_headers(context)
    assert exporter.get_finished_spans() == ()
    # Not recorded, yet propagated: the same trace, the sampled flag clear, the state kept.
    sent = W3C.extract(headers)
    sent_context = trace.get_current_span(sent).get_span_context()
    assert sent_context.is_valid
    assert not sent_context.trace_flags.sampled
    expected: dict[str, str] = {}
    propagate.inject(expected, trace.set_span_in_context(NonRecordingSpan(sent_context), context))
    assert headers == expected
    if parent != "none":
        assert sent_context.trace_id == TRACE_ID
        assert headers["tracestate"] == "v=1"


def test_the_installed_sdk_keeps_a_readable_spans_fields_where_lean_spans_keep_them() -> None:
    assert _lean._layout_matches()


def test_with_another_sdk_layout_spans_are_copied_through_the_public_constructor(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    monkeypatch.setattr(_lean, "_SHARED_LAYOUT", False)
    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False)
    tracer = provider.get_tracer("copies", "1.0")
    with tracer.start_as_current_span("outer", attributes={"a": 1}) as outer:
        outer.add_event("noted", {"b": 2})
        with tracer.start_as_current_span("inner", kind=SpanKind.CLIENT):
            pass
    inner_done, outer_done = exporter.get_finished_spans()
    assert type(inner_done) is ReadableSpan
    assert type(outer_done) is ReadableSpan
    assert (inner_done.name, inner_done.kind) == ("inner", SpanKind.CLIENT)
    assert inner_done.parent == outer_done.context == outer.get_span_context()
    assert dict(outer_done.attributes or {}) == {"a": 1}
    assert [(e.name, dict(e.attributes or {})) for e in outer_done.events] == [("noted", {"b": 2})]
    scope = outer_done.instrumentation_scope
    assert scope is not None
    assert (scope.name, scope.version) == ("copies", "1.0")


# -- span contexts made without the constructor ---------------------------------------------------
def assert_same_context(made: SpanContext, expected: SpanContext) -> None:
    """``made`` is, for every reader, the ``SpanContext`` the constructor made as ``expected``."""
    assert type(made) is SpanContext
    assert made == expected
    assert tuple(made) == tuple(expected)
    assert repr(made) == repr(expected)
    for field in ("trace_id", "span_id", "is_remote", "trace_flags", "trace_state", "is_valid"):
        assert getattr(made, field) == getattr(expected, field), field
    assert made.is_remote is False
    assert made.is_valid is True
    assert type(made.trace_flags) is TraceFlags
    assert made.trace_flags.sampled is expected.trace_flags.sampled
    assert made.trace_state.to_header() == expected.trace_state.to_header()


def test_the_installed_api_makes_span_contexts_the_way_lean_spans_build_them() -> None:
    assert _lean._tuple_context_matches()


CONTEXT_STATES: dict[str, TraceState] = {
    "no trace state": TraceState(),
    "a trace state": TraceState([("vendor", "abc"), ("x", "1")]),
}


@pytest.mark.parametrize("state", CONTEXT_STATES)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
@pytest.mark.parametrize(
    "ids",
    [(1, 1), (TRACE_ID, PARENT_ID), ((1 << 128) - 1, (1 << 64) - 1)],
    ids=["smallest", "leading zero byte", "largest"],
)
def test_a_span_context_built_directly_equals_the_constructors(
    ids: tuple[int, int], flags: int, state: str
) -> None:
    trace_id, span_id = ids
    made = _lean._span_context(trace_id, span_id, flags, CONTEXT_STATES[state])
    expected = SpanContext(trace_id, span_id, False, TraceFlags(flags), CONTEXT_STATES[state])
    assert_same_context(made, expected)


@pytest.mark.parametrize("state", ["", "vendor=abc,x=1"], ids=["no trace state", "a trace state"])
def test_a_lean_spans_context_equals_the_constructors_and_is_what_children_and_exporters_see(
    state: str, lean: Make
) -> None:
    exporter = InMemorySpanExporter()
    tracer = lean(exporter, batch=False).get_tracer("contexts")
    headers = {"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-03"}
    if state:
        headers["tracestate"] = state
    span = tracer.start_span("child", W3C.extract(headers))
    assert isinstance(span, LeanSpan)
    expected = SpanContext(
        TRACE_ID,
        span.span_id,
        False,
        TraceFlags(0x03),
        TraceState.from_header([state]) if state else TraceState(),
    )
    assert_same_context(span.get_span_context(), expected)
    assert span.get_span_context() is span.get_span_context()  # made once
    grandchild = tracer.start_span("grandchild", trace.set_span_in_context(span))
    grandchild.end()
    span.end()
    grandchild_done, child_done = exporter.get_finished_spans()
    assert child_done.context is not None
    assert_same_context(child_done.context, expected)
    assert grandchild_done.parent == expected
    assert grandchild_done.context is not None
    assert_same_context(
        grandchild_done.context,
        SpanContext(
            TRACE_ID,
            grandchild_done.context.span_id,
            False,
            TraceFlags(0x03),
            expected.trace_state,
        ),
    )


def test_a_new_roots_context_equals_the_constructors_sampled_or_not(lean: Make) -> None:
    for ratio, flags in ((1.0, 0x03), (0.0, 0x02)):  # random trace id; sampled, or not
        tracer = lean(InMemorySpanExporter(), batch=False, sampling_ratio=ratio).get_tracer("roots")
        context = tracer.start_span("root").get_span_context()
        expected = SpanContext(context.trace_id, context.span_id, False, TraceFlags(flags))
        assert_same_context(context, expected)
        assert context.trace_state is _tracing.EMPTY_STATE


# -- attributes through the API: validated in the export thread, as the SDK does ------------------
def _then(span: trace.Span, *calls: Callable[[trace.Span], None]) -> trace.Span:
    for call in calls:
        call(span)
    return span


API_ATTRIBUTES: dict[str, Callable[[trace.Tracer], trace.Span]] = {
    "an empty key": lambda t: _then(t.start_span("span"), lambda s: s.set_attribute("", "x")),
    "a key that is no str": lambda t: _then(
        t.start_span("span"),
        lambda s: s.set_attribute(5, "x"),  # type: ignore[arg-type]
    ),
    "a None value": lambda t: _then(t.start_span("span"), lambda s: s.set_attribute("k", None)),
    "an object value": lambda t: _then(
        t.start_span("span"),
        lambda s: s.set_attribute("k", object()),  # type: ignore[arg-type]
    ),
    "a mixed sequence": lambda t: _then(
        t.start_span("span"),
        lambda s: s.set_attribute("k", [1, "a"]),
    ),
    "set_attributes with an empty key": lambda t: _then(
        t.start_span("span"), lambda s: s.set_attributes({"": 1, "ok": 2})
    ),
    "start_span with an empty key": lambda t: t.start_span("span", attributes={"": 1, "ok": 2}),
    "a bytes value": lambda t: _then(t.start_span("span"), lambda s: s.set_attribute("k", b"x")),
    "set_attributes with a key that is no str": lambda t: _then(
        t.start_span("span"),
        lambda s: s.set_attributes({5: 1, "ok": 2}),  # type: ignore[dict-item]
    ),
    "start_span with a key that is no str": lambda t: t.start_span(
        "span",
        attributes={5: 1, "ok": 2},  # type: ignore[dict-item]
    ),
}


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "export thread"])
@pytest.mark.parametrize("case", list(API_ATTRIBUTES))
def test_attributes_set_through_the_api_are_exported_as_the_sdk_exports_them(
    case: str, batched: bool, monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch="1")  # batched: each span exported by the thread
    sdk_spans = InMemorySpanExporter()
    sdk = sdk_provider(sdk_spans)
    API_ATTRIBUTES[case](sdk.get_tracer("attributes")).end()
    sdk.shutdown()
    [expected] = sdk_spans.get_finished_spans()

    lean_spans = InMemorySpanExporter()
    provider = lean(lean_spans, batch=batched)
    API_ATTRIBUTES[case](provider.get_tracer("attributes")).end()
    wait_until(lambda: len(lean_spans.get_finished_spans()) == 1, "exported")
    [done] = lean_spans.get_finished_spans()
    assert dict(done.attributes or {}) == dict(expected.attributes or {})
    assert done.dropped_attributes == expected.dropped_attributes
    assert "" not in (done.attributes or {})
    assert all(type(key) is str for key in done.attributes or {})


WEBHOOK_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/hooks/shop",
    "scheme": "https",
    "headers": [],
}


def traced_webhook(monkeypatch: pytest.MonkeyPatch, provider: trace.TracerProvider) -> None:
    """One webhook's SERVER span, through interlink's own calls, with ``provider`` the global one."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    assert _tracing.enabled()
    span, token = _tracing.start_webhook("shop", "/hooks/shop", WEBHOOK_SCOPE, {})
    _tracing.end_webhook(span, token, 202, "duplicate", "already_received", None)


WEBHOOK_ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "POST",
    "url.path": "/hooks/shop",
    "url.scheme": "https",
    "http.route": "/hooks/shop",
    "interlink.webhook.source": "shop",
    "interlink.webhook.outcome": "duplicate",
    "interlink.webhook.reason": "already_received",
    "http.response.status_code": 202,
}


def test_the_webhook_span_exports_its_own_attributes_as_they_were_given(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    checked: list[str] = []
    check = LeanSpan._check_attributes

    def counting(span: LeanSpan) -> None:
        checked.append(span.name)
        check(span)

    monkeypatch.setattr(LeanSpan, "_check_attributes", counting)
    exporter = InMemorySpanExporter()
    provider = lean(exporter, batch=False)
    traced_webhook(monkeypatch, provider)
    [done] = exporter.get_finished_spans()
    assert done.name == "POST /hooks/shop"
    assert dict(done.attributes or {}) == WEBHOOK_ATTRIBUTES
    assert done.dropped_attributes == 0
    # Ours are known to be valid: exported as recorded, neither scanned again nor copied into
    # BoundedAttributes; the same attributes through the API are checked (the control).
    assert not isinstance(done.attributes, BoundedAttributes)
    assert checked == []
    provider.get_tracer("api").start_span("through the API", attributes=WEBHOOK_ATTRIBUTES).end()
    assert checked == ["through the API"]
    assert dict(exporter.get_finished_spans()[-1].attributes or {}) == WEBHOOK_ATTRIBUTES


def webhook_on_both(
    monkeypatch: pytest.MonkeyPatch, lean: Make, limits: SpanLimits
) -> tuple[ReadableSpan, ReadableSpan]:
    """One webhook's SERVER span with these limits: the SDK provider's, then the lean one's."""
    makers: list[Callable[[InMemorySpanExporter], trace.TracerProvider]] = [
        lambda exporter: sdk_provider(exporter, limits=limits),
        lambda exporter: lean(exporter, batch=False, limits=limits),
    ]
    found: list[ReadableSpan] = []
    for make in makers:
        exporter = InMemorySpanExporter()
        traced_webhook(monkeypatch, make(exporter))
        [done] = exporter.get_finished_spans()
        found.append(done)
    return found[0], found[1]


def test_with_a_value_length_limit_the_webhook_spans_strings_are_cut_as_the_sdk_cuts_them(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    sdk_span, lean_span = webhook_on_both(
        monkeypatch, lean, SpanLimits(max_span_attribute_length=3)
    )
    sdk, mine = dict(sdk_span.attributes or {}), dict(lean_span.attributes or {})
    assert mine == sdk
    assert mine == {
        key: value[:3] if isinstance(value, str) else value
        for key, value in WEBHOOK_ATTRIBUTES.items()
    }
    assert mine["http.request.method"] == "POS"


# -- the batcher's fast path -----------------------------------------------------------------------
class CountedWake(threading.Event):
    """The export thread's wake-up, counting the times it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


def test_spans_wait_until_a_batch_is_full_and_the_full_batch_is_exported_at_once(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch="4", queue=HUGE)
    exporter = Recorder()
    provider = lean(exporter)
    wake = provider.batcher._wake = CountedWake()  # before the thread starts: it waits on this

    def batch_of_four(names: list[str], before: int) -> None:
        end_spans(provider, *names[:3])
        assert wake.sets == before  # three spans: the thread is not woken, nothing exported
        assert len(exporter.batches) == before
        end_spans(provider, names[3])
        assert wake.sets == before + 1
        wait_until(lambda: len(exporter.batches) == before + 1, "the full batch exported")
        assert exporter.batches[before] == names

    batch_of_four([f"a{n}" for n in range(4)], 0)
    batch_of_four([f"b{n}" for n in range(4)], 1)
    assert provider.dropped_spans == 0


def test_a_full_queue_counts_each_span_it_pushes_out_and_loses_the_oldest(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, queue="6", batch="3")
    exporter = Recorder()
    gate = exporter.hold()
    provider = lean(exporter)
    taken = [f"taken {n}" for n in range(3)]
    end_spans(provider, *taken)
    assert exporter.entered.wait(10)  # the thread holds a full batch: the queue is empty
    queued = [f"queued {n}" for n in range(6)]
    for name in queued:
        end_spans(provider, name)
        assert provider.dropped_spans == 0  # room for six
    late = [f"late {n}" for n in range(4)]
    for count, name in enumerate(late, 1):
        end_spans(provider, name)
        assert provider.dropped_spans == count  # each pushes the oldest queued one out
    gate.set()
    assert provider.force_flush()
    assert exporter.names() == [*taken, "queued 4", "queued 5", *late]
    assert provider.dropped_spans == 4


def test_a_span_ended_after_shutdown_is_neither_exported_nor_kept(
    monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    bsp(monkeypatch, delay=HUGE, batch="4", queue=HUGE)
    exporter = Recorder()
    provider = lean(exporter)
    tracer = provider.get_tracer("late")
    still_open = tracer.start_span("open at shutdown")
    end_spans(provider, "before")  # the export thread runs: ends take the fast path from now
    provider.shutdown()
    assert exporter.names() == ["before"]
    still_open.end()
    end_spans(provider, "after 1", "after 2", "after 3", "after 4", "after 5")
    assert not provider.force_flush()
    assert exporter.names() == ["before"]
    assert len(provider.batcher.queue) == 0  # nothing held on to, for nothing
    assert provider.dropped_spans == 0


@pytest.mark.parametrize("limit", [0, 3, 6, 7, 8])
def test_under_an_attribute_count_limit_the_webhook_span_keeps_what_the_sdk_keeps(
    limit: int, monkeypatch: pytest.MonkeyPatch, lean: Make
) -> None:
    found = webhook_on_both(monkeypatch, lean, SpanLimits(max_span_attributes=limit))
    sdk, mine = ((dict(span.attributes or {}), span.dropped_attributes) for span in found)
    assert mine == sdk
    assert len(mine[0]) == min(limit, len(WEBHOOK_ATTRIBUTES))
