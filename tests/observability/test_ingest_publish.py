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
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from interlink.messaging import MemoryBroker, Message
from interlink.observability import _tracing
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
