"""The webhook receiver's own publish span (``tracing.start_publish``) and when it steps aside.

With the lean provider the receiver makes the ``publish {queue}`` span itself
and calls the broker's publish without the traced wrapper; the span, its
attributes and the ``traceparent`` stored with the message must be what the
traced ``Broker.publish`` makes (the SDK provider, which takes the wrapper's
path, is the reference: every test here runs on both through ``spans``).
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)

from interlink.messaging import MemoryBroker, Message
from interlink.observability import _tracing
from interlink.observability._lean import LeanTracerProvider
from interlink.webhooks import WebhookReceiver, WebhookSource
from tests.webhooks.signing import SECRET, standard_headers

BODY = b'{"type":"invoice.paid"}'
PATH = "/webhooks/billing"


class OverridingBroker(MemoryBroker):
    """A backend whose ``publish`` overrides the traced one and calls it (one span, the base's)."""

    overridden = 0

    async def publish(
        self,
        queue: str,
        body: object,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        key: str | None = None,
    ) -> str:
        OverridingBroker.overridden += 1
        return await super().publish(
            queue, body, message_id=message_id, headers=headers, delay=delay, key=key
        )


async def _post(broker: MemoryBroker, webhook_id: str = "msg_1") -> httpx.Response:
    source = WebhookSource(
        "billing", path=PATH, scheme="standard", secrets=[SECRET], queue="billing"
    )
    async with WebhookReceiver([source], broker=broker) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
            headers = standard_headers(webhook_id, int(time.time()), BODY)
            return await client.post(PATH, content=BODY, headers=headers)


async def _stored(broker: MemoryBroker) -> Message:
    async with broker.consume("billing") as consumer:
        async for delivery in consumer:
            await delivery.ack()
            return delivery.message
    raise AssertionError("nothing was stored")  # pragma: no cover


def _named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


async def test_the_publish_span_and_the_stored_traceparent_are_the_traced_publishs(
    broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    assert (await _post(broker)).status_code == 200
    [server] = _named(spans, f"POST {PATH}")
    [publish] = _named(spans, "publish billing")
    assert publish.kind is SpanKind.PRODUCER
    assert dict(publish.attributes or {}) == {
        "messaging.system": "memory",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.destination.name": "billing",
        "messaging.message.id": "billing:msg_1",
    }
    assert publish.parent == server.context
    assert publish.status.status_code is StatusCode.UNSET
    assert server.start_time is not None
    assert publish.start_time is not None
    assert server.start_time <= publish.start_time
    assert publish.end_time is not None
    assert server.end_time is not None
    assert publish.end_time <= server.end_time
    context = publish.context
    assert context is not None
    message = await _stored(broker)
    assert message.headers["traceparent"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    )
    assert "tracestate" not in message.headers


async def test_with_baggage_in_the_context_the_traced_publish_carries_it(
    broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    # The receiver's fast path writes traceparent only: with anything else in the context it
    # steps aside and the traced publish injects through the global propagator.
    token = context_api.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert (await _post(broker)).status_code == 200
    finally:
        context_api.detach(token)
    [publish] = _named(spans, "publish billing")
    message = await _stored(broker)
    assert message.headers["baggage"] == "tenant=acme"
    context = publish.context
    assert context is not None
    assert message.headers["traceparent"].split("-")[2] == f"{context.span_id:016x}"


async def test_a_backend_overriding_publish_keeps_its_override_and_one_span(
    spans: InMemorySpanExporter,
) -> None:
    broker = OverridingBroker()
    await broker.start()
    before = OverridingBroker.overridden
    try:
        assert _tracing.untraced_publish(broker) is None  # its publish is not the wrapper
        assert (await _post(broker)).status_code == 200
        assert OverridingBroker.overridden == before + 1
        [publish] = _named(spans, "publish billing")
        message = await _stored(broker)
    finally:
        await broker.close()
    context = publish.context
    assert context is not None
    assert message.headers["traceparent"].split("-")[2] == f"{context.span_id:016x}"


async def test_untraced_publish_is_the_backends_own_publish_without_a_span(
    broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    untraced = _tracing.untraced_publish(broker)
    assert untraced is not None
    await untraced("billing", b"x", message_id="m-1", headers={"a": "b"})
    assert _named(spans, "publish billing") == []
    message = await _stored(broker)
    assert (message.id, message.headers) == ("m-1", {"a": "b"})


def test_start_publish_steps_aside_without_a_lean_span_to_parent_it(
    spans: InMemorySpanExporter,
) -> None:
    headers: dict[str, str] = {}
    assert _tracing.start_publish("memory://", "billing", "m-1", headers) is None  # no span
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("parent"):
        span = _tracing.start_publish("memory://", "billing", "m-1", headers)
    provider = trace.get_tracer_provider()
    if type(provider).__name__ == "LeanTracerProvider":
        assert span is not None
        _tracing.end_publish(span, None)
        assert headers["traceparent"].startswith("00-")
    else:  # an SDK span: the traced publish makes the span
        assert span is None
        assert headers == {}


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (asyncio.CancelledError(), StatusCode.UNSET, None),
        (OSError("disk"), StatusCode.ERROR, "OSError"),
        (None, StatusCode.UNSET, None),
    ],
)
def test_end_publish_records_an_error_but_not_a_cancellation(
    spans: InMemorySpanExporter,
    error: BaseException | None,
    status: StatusCode,
    error_type: str | None,
) -> None:
    tracer = trace.get_tracer("test")
    span = tracer.start_span("publish billing", kind=SpanKind.PRODUCER)
    _tracing.end_publish(span, error)
    [ended] = _named(spans, "publish billing")
    attributes: dict[str, Any] = dict(ended.attributes or {})
    assert ended.status.status_code is status
    assert attributes.get("error.type") == error_type


class Queues(enum.StrEnum):
    BILLING = "billing"


async def test_a_queue_named_by_a_str_enum_is_traced_like_its_value(
    broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    await broker.publish(Queues.BILLING, {"n": 1}, message_id="m-1")
    [publish] = _named(spans, "publish billing")
    destination = dict(publish.attributes or {})["messaging.destination.name"]
    assert (destination, type(destination)) == ("billing", str)
    context = publish.context
    assert context is not None
    message = await _stored(broker)
    assert message.headers["traceparent"].split("-")[2] == f"{context.span_id:016x}"


async def test_a_forwarded_traceparent_is_kept_as_the_traced_publish_keeps_it(
    broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    # A source may store the sender's traceparent with the webhook; the traced publish never
    # replaces a traceparent its caller set, and the receiver's own publish span steps aside.
    sender = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    source = WebhookSource(
        "billing",
        path=PATH,
        scheme="standard",
        secrets=[SECRET],
        queue="billing",
        forward_headers=["traceparent"],
    )
    async with WebhookReceiver([source], broker=broker) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
            headers = standard_headers("msg_1", int(time.time()), BODY)
            headers["traceparent"] = sender
            assert (await client.post(PATH, content=BODY, headers=headers)).status_code == 200
    [publish] = _named(spans, "publish billing")
    message = await _stored(broker)
    assert message.headers["traceparent"] == sender
    assert publish.context is not None
    assert publish.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736


# -- unsampled webhooks ---------------------------------------------------------------------
@pytest.fixture(params=["sdk", "lean"])
def unsampled(request: pytest.FixtureRequest) -> Iterator[tuple[str, InMemorySpanExporter]]:
    """A global provider that samples no new trace (ratio 0, parent-based): the SDK's or lean."""
    exporter = InMemorySpanExporter()
    provider: TracerProvider | LeanTracerProvider
    if request.param == "sdk":
        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider = LeanTracerProvider(exporter, batch=False, sampling_ratio=0.0)
    trace.set_tracer_provider(provider)
    yield request.param, exporter
    provider.shutdown()


class _Counting:
    """Counts the calls of ``_tracing._publish_span``, which only the traced publish makes here."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = _tracing._publish_span

    def __call__(self, url: str, queue: str, message_id: str | None) -> Any:
        self.calls += 1
        return self.real(url, queue, message_id)


# Not sampled: flags 00, or 02 where the trace id is random (W3C trace context level 2).
TRACEPARENT_UNSAMPLED = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[02]")


async def test_an_unsampled_webhook_stores_the_traceparent_the_traced_publish_would(
    broker: MemoryBroker,
    unsampled: tuple[str, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind, spans = unsampled
    counting = _Counting()
    monkeypatch.setattr(_tracing, "_publish_span", counting)
    assert (await _post(broker)).status_code == 200
    assert spans.get_finished_spans() == ()  # nothing sampled, nothing recorded
    message = await _stored(broker)
    match = TRACEPARENT_UNSAMPLED.fullmatch(message.headers["traceparent"])
    assert match is not None, message.headers
    assert int(match[1], 16)  # valid ids: the trace goes on, unsampled
    assert int(match[2], 16)
    assert "tracestate" not in message.headers
    # The lean provider writes it without the traced publish's span (nothing to record);
    # the SDK's provider decides in the traced publish, its sampler being the application's.
    assert counting.calls == (0 if kind == "lean" else 1)


async def test_an_unsampled_incoming_trace_goes_on_in_the_stored_message(
    broker: MemoryBroker, unsampled: tuple[str, InMemorySpanExporter]
) -> None:
    _, spans = unsampled
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    source = WebhookSource(
        "billing", path=PATH, scheme="standard", secrets=[SECRET], queue="billing"
    )
    async with WebhookReceiver([source], broker=broker) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
            headers = standard_headers("msg_1", int(time.time()), BODY)
            headers["traceparent"] = incoming
            headers["tracestate"] = "vendor=abc"
            assert (await client.post(PATH, content=BODY, headers=headers)).status_code == 200
    assert spans.get_finished_spans() == ()
    message = await _stored(broker)
    match = TRACEPARENT_UNSAMPLED.fullmatch(message.headers["traceparent"])
    assert match is not None, message.headers
    assert match[1] == "0af7651916cd43dd8448eb211c80319c"  # the sender's trace, its flags
    assert message.headers["traceparent"].endswith("-00")
    assert match[2] not in ("b7ad6b7169203331", "0" * 16)  # the publish's own id
    assert message.headers["tracestate"] == "vendor=abc"


@pytest.mark.parametrize(
    "context",
    [
        SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)),
        INVALID_SPAN_CONTEXT,
    ],
    ids=["sampled", "invalid"],
)
def test_start_publish_leaves_other_non_recording_parents_to_the_traced_publish(
    context: SpanContext,
) -> None:
    # An application's own NonRecordingSpan that says sampled (the lean tracer would record a
    # child of it), or an invalid one: the traced publish decides, as for any other parent.
    provider = LeanTracerProvider(InMemorySpanExporter(), batch=False, sampling_ratio=0.0)
    trace.set_tracer_provider(provider)
    headers: dict[str, str] = {}
    try:
        with trace.use_span(trace.NonRecordingSpan(context)):
            assert _tracing.start_publish("memory://", "billing", "m-1", headers) is None
    finally:
        provider.shutdown()
    assert headers == {}
