"""Tracing: one webhook's life is one trace, through the service, retries, dead letters, replay."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from interlink.core.errors import TransformError
from interlink.messaging import MessageContext, Reject, Worker, open_broker
from interlink.observability import _tracing
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from tests.polling import eventually
from tests.webhooks.signing import KEY, SECRET, standard_headers

BEARER = "tok-bearer-Zq8s1x9d"
QUERY_KEY = "qk-Hh2v7Pz0"
ADMIN = "adm-Ww3k5Lm2"


def named(found: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return sorted((s for s in found if s.name == name), key=lambda s: s.start_time or 0)


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def traceparent(span: ReadableSpan) -> str:
    """The ``traceparent`` header that carries ``span`` as the parent."""
    c = span.context
    assert c is not None
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


def everything_said(found: Sequence[ReadableSpan]) -> str:
    """Every name, attribute, event, link and status text of ``found`` as one string."""
    parts: list[str] = []
    for span in found:
        parts.append(span.name)
        parts.append(str(span.status.description))
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return "\n".join(parts)


def _documented_spans() -> list[tuple[re.Pattern[str], SpanKind, set[str]]]:
    """docs/observability.md's span table: (name pattern, kind, every backticked word of the row).

    Most literal first, so that ``transform {name}`` is tried before ``{client} {method}``.
    """
    text = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    table = text.split("### Spans", 1)[1].split("\n### ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in SpanKind.__members__:
            template = re.match(r"`([^`]+)`", cells[0])
            assert template is not None, line
            literal = re.sub(r"\{[a-z]+\}", "", template[1])
            pattern = re.escape(template[1])
            pattern = re.sub(r"\\\{[a-z]+\\\}", ".+", pattern)
            words = set(re.findall(r"`([^`]+)`", cells[3]))
            rows.append((len(literal), re.compile(pattern), SpanKind[cells[1]], words))
    rows.sort(key=lambda row: -row[0])
    return [(pattern, kind, words) for _, pattern, kind, words in rows]


def assert_documented(found: Sequence[ReadableSpan]) -> None:
    """Each of interlink's spans in ``found`` has a row in the docs naming all its attributes."""
    rows = _documented_spans()
    assert len(rows) >= 9
    checked = 0
    for span in found:
        scope = span.instrumentation_scope
        if scope is None or scope.name != "interlink":
            continue
        row = next((r for r in rows if r[1] == span.kind and r[0].fullmatch(span.name)), None)
        assert row is not None, f"no row for {span.kind.name} span {span.name!r}"
        undocumented = set(span.attributes or {}) - row[2]
        assert not undocumented, f"{span.name!r}: {sorted(undocumented)} not in the docs"
        checked += 1
    assert checked


CONFIG = """
service:
  name: traced
  listen: 127.0.0.1:0
  admin_token: {admin}
broker: {{url: "sqlite:///{db}"}}
clients:
  upstream:
    base_url: "{upstream}"
    auth: {{type: bearer, token: {bearer}}}
    retry: {{max_attempts: 2, initial_delay: 10ms, max_delay: 10ms}}
    circuit_breaker: {{failure_rate: 90, min_calls: 50}}
webhooks:
  shop: {{path: /webhooks/shop, scheme: standard, secrets: ["{secret}"], publish_to: orders}}
queues:
  orders:
    forward: {{client: upstream, path: "/orders?api_key={query_key}"}}
    transform: mapping.yaml
    retry_delays: [10ms]
    max_attempts: 3
"""


async def test_one_webhook_is_one_trace_from_receive_to_the_upstream_attempts(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    (tmp_path / "mapping.yaml").write_text("name: order\nfields:\n  amount: {convert: int}\n")
    path = tmp_path / "interlink.yaml"
    async with FakeUpstream() as upstream:
        # The first process attempt's call fails twice (the client retries once), then the
        # message's second attempt gets through.
        route = upstream.route("POST", "/orders").reply(503, 503, 201)
        path.write_text(
            CONFIG.format(
                admin=ADMIN,
                db=tmp_path / "broker.db",
                upstream=upstream.url,
                bearer=BEARER,
                secret=SECRET,
                query_key=QUERY_KEY,
            )
        )
        async with Service(load_config(path)) as service, aiohttp.ClientSession() as session:
            body = json.dumps({"amount": "42"}).encode()
            headers = standard_headers("wh_1", int(time.time()), body)
            async with session.post(
                f"{service.url}/webhooks/shop", data=body, headers=headers
            ) as r:
                assert r.status == 200

            def acked() -> bool:
                done = named(spans.get_finished_spans(), "process orders")
                return any((s.attributes or {}).get("interlink.outcome") == "acked" for s in done)

            await eventually(acked, "processed")
        assert route.calls == 3
        upstream_url, upstream_port = upstream.url, upstream.port

    found = spans.get_finished_spans()
    assert {s.context.trace_id for s in found if s.context is not None} == {
        found[0].context.trace_id  # type: ignore[union-attr]
    }, "one trace"

    [receive] = named(found, "POST /webhooks/shop")
    assert receive.kind is SpanKind.SERVER
    assert receive.parent is None
    assert receive.attributes is not None
    assert receive.attributes["http.route"] == "/webhooks/shop"
    assert receive.attributes["http.request.method"] == "POST"
    assert receive.attributes["http.response.status_code"] == 200
    assert receive.attributes["interlink.webhook.source"] == "shop"
    assert receive.attributes["interlink.webhook.outcome"] == "accepted"

    [publish] = named(found, "publish orders")
    assert publish.kind is SpanKind.PRODUCER
    assert parent_of(publish) == span_id(receive)
    assert publish.attributes is not None
    assert publish.attributes["messaging.message.id"] == "shop:wh_1"
    assert publish.attributes["messaging.system"] == "sqlite"
    assert publish.attributes["messaging.operation.type"] == "send"

    receives = named(found, "receive orders")
    assert [s.kind for s in receives] == [SpanKind.CLIENT] * 2
    assert all(parent_of(s) == span_id(publish) for s in receives)

    first, second = named(found, "process orders")
    for n, process in enumerate((first, second), 1):
        assert process.kind is SpanKind.CONSUMER
        assert parent_of(process) == span_id(publish)
        assert process.attributes is not None
        assert process.attributes["interlink.message.attempt"] == n
        assert process.attributes["messaging.message.id"] == "shop:wh_1"
        assert process.attributes["messaging.operation.type"] == "process"
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["interlink.outcome"] == "retried"
    assert first.attributes["interlink.retry.delay"] == pytest.approx(0.01)
    assert first.attributes["error.type"] == "interlink.core.errors.HttpStatusError"
    assert first.status.status_code is StatusCode.ERROR
    assert second.attributes["interlink.outcome"] == "acked"
    assert second.status.status_code is StatusCode.UNSET

    transforms = named(found, "transform order")
    assert [parent_of(s) for s in transforms] == [span_id(first), span_id(second)]
    handlers = named(found, "handler orders:forward")
    assert [parent_of(s) for s in handlers] == [span_id(first), span_id(second)]
    assert handlers[0].status.status_code is StatusCode.ERROR

    calls = named(found, "upstream POST")
    assert [parent_of(s) for s in calls] == [span_id(h) for h in handlers]
    assert [s.kind for s in calls] == [SpanKind.INTERNAL] * 2
    assert calls[0].attributes is not None
    assert calls[1].attributes is not None
    assert calls[0].attributes["interlink.client.attempts"] == 2
    assert calls[0].status.status_code is StatusCode.ERROR
    assert calls[1].attributes["http.response.status_code"] == 201
    [retry] = calls[0].events
    assert retry.name == "interlink.retry"
    assert retry.attributes is not None
    assert retry.attributes["interlink.retry.reason"] == "backoff"
    assert 0.0 <= retry.attributes["interlink.retry.delay"] <= 0.01  # jittered

    attempts = named(found, "POST")
    assert [parent_of(s) for s in attempts] == [span_id(calls[0])] * 2 + [span_id(calls[1])]
    statuses = [(s.attributes or {}).get("http.response.status_code") for s in attempts]
    assert statuses == [503, 503, 201]
    resends = [(s.attributes or {}).get("http.request.resend_count") for s in attempts]
    assert resends == [None, 1, None]
    for attempt in attempts:
        a = attempt.attributes
        assert attempt.kind is SpanKind.CLIENT
        assert a is not None
        assert a["server.address"] == "127.0.0.1"
        assert a["server.port"] == upstream_port
        assert a["url.full"] == f"{upstream_url}/orders?api_key=REDACTED"
        assert a["interlink.breaker.state"] == "closed"
    assert (attempts[0].attributes or {})["error.type"] == "503"

    # The upstream saw each attempt's own traceparent.
    sent = [request.headers["traceparent"] for request in route.requests]
    assert sent == [traceparent(s) for s in attempts]

    said = everything_said(found)
    for secret in (BEARER, QUERY_KEY, ADMIN, SECRET, SECRET.removeprefix("whsec_"), KEY.decode()):
        assert secret not in said
    assert_documented(found)


async def _worker_run(
    broker_url: str, handler: Callable[[Any, MessageContext], Awaitable[None]]
) -> tuple[Any, Worker]:
    broker = await open_broker(broker_url)
    worker = Worker(broker)
    worker.add_handler("jobs", handler, name="job", max_attempts=1)
    await worker.start()
    return broker, worker


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_traceparent_survives_dead_letter_and_replay(
    backend: str, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
    seen: list[str] = []

    async def job(body: Any, ctx: MessageContext) -> None:
        seen.append(ctx.headers["traceparent"])
        if len(seen) == 1:
            raise Reject("not yet")

    broker, worker = await _worker_run(url, job)
    try:
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("origin") as origin:
            await broker.publish("jobs", {"n": 1})
        await eventually(lambda: worker.stats()[("jobs", "job")].dead_lettered == 1, "dead")
        [dead] = await broker.dead_letters.list(queue="jobs")
        [publish] = named(spans.get_finished_spans(), "publish jobs")
        assert dead.message.headers["traceparent"] == seen[0]
        assert seen[0] == traceparent(publish)
        with tracer.start_as_current_span("replaying"):  # the replay joins the old trace
            await broker.dead_letters.replay([dead.id])
        await eventually(lambda: worker.stats()[("jobs", "job")].acked == 1, "replayed")
    finally:
        await worker.stop()
        await broker.close()

    found = spans.get_finished_spans()
    trace_id = origin.get_span_context().trace_id
    assert seen == [seen[0], seen[0]]
    first, replayed = named(found, "process jobs")
    assert first.context.trace_id == replayed.context.trace_id == trace_id  # type: ignore[union-attr]
    assert parent_of(first) == parent_of(replayed) == span_id(publish)
    assert (first.attributes or {})["interlink.outcome"] == "dead_lettered"
    assert (first.attributes or {})["interlink.reason"] == "rejected"
    assert (replayed.attributes or {})["interlink.outcome"] == "acked"
    [send] = named(found, "send jobs.dlq")
    assert send.kind is SpanKind.PRODUCER
    assert parent_of(send) == span_id(first)
    assert (send.attributes or {})["error.type"] == "interlink.messaging.Reject"
    assert send.status.status_code is StatusCode.ERROR  # a dead letter is an error to look for
    assert (first.attributes or {})["error.type"] == "interlink.messaging.Reject"
    assert first.status.status_code is StatusCode.ERROR
    assert (send.attributes or {})["messaging.destination.name"] == "jobs.dlq"


# -- failed attempts are error spans ----------------------------------------------------------
PERSONAL = "card 4242424242424242 of jane@example.com"
"""An exception message that must never reach a span (personal data)."""


async def _run_until(
    spans: InMemorySpanExporter,
    handler: Callable[[Any, MessageContext], Awaitable[None]],
    body: object,
    processed: int,
    **options: Any,
) -> list[ReadableSpan]:
    """Publish ``body`` to a worker on ``jobs``; the spans once ``processed`` attempts ended."""
    broker = await open_broker("memory://")
    worker = Worker(broker)
    worker.add_handler("jobs", handler, name="job", retry=[0.01], **options)
    await worker.start()
    try:
        await broker.publish("jobs", body)
        await eventually(
            lambda: len(named(spans.get_finished_spans(), "process jobs")) == processed,
            "processed",
        )
    finally:
        await worker.stop()
        await broker.close()
    return list(spans.get_finished_spans())


def _is_error(span: ReadableSpan, error_type: str) -> None:
    assert (span.attributes or {})["error.type"] == error_type
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == error_type.rpartition(".")[2]  # the class name, short


def _is_ok(span: ReadableSpan) -> None:
    assert "error.type" not in (span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET


async def test_a_failed_attempt_is_an_error_span_and_the_retry_that_succeeds_is_not(
    spans: InMemorySpanExporter,
) -> None:
    calls: list[int] = []

    async def job(body: Any, ctx: MessageContext) -> None:
        calls.append(ctx.message.attempt)
        if len(calls) == 1:
            raise ValueError(PERSONAL)

    found = await _run_until(spans, job, {"n": 1}, 2, max_attempts=2)
    assert calls == [1, 2]
    failed, succeeded = named(found, "process jobs")
    assert (failed.attributes or {})["interlink.outcome"] == "retried"
    _is_error(failed, "ValueError")
    assert (succeeded.attributes or {})["interlink.outcome"] == "acked"
    _is_ok(succeeded)
    assert named(found, "send jobs.dlq") == []
    assert "4242" not in everything_said([failed, succeeded])  # the message text stays out


async def _always_fails(body: Any, ctx: MessageContext) -> None:
    raise ValueError(PERSONAL)


async def _never_called(body: Any, ctx: MessageContext) -> None:
    raise AssertionError("a body that does not decode never reaches the handler")


class NumbersOnly:
    """A transform that refuses the published ``{"n": "x"}`` (decode: a permanent failure)."""

    name = "numbers"

    def transform(self, value: Any) -> Any:
        raise TransformError("n", "not a number", repr(value["n"]))


@pytest.mark.parametrize(
    ("handler", "options", "processed", "reason", "error_type"),
    [
        (_always_fails, {"max_attempts": 2}, 2, "exhausted", "ValueError"),
        (
            _never_called,
            {"model": dict[str, int]},
            1,
            "permanent",
            "interlink.messaging.InvalidPayloadError",
        ),
        (
            _never_called,
            {"transform": NumbersOnly()},
            1,
            "permanent",
            "interlink.core.errors.TransformError",
        ),
    ],
    ids=["handler-raised", "validation-failed", "transform-failed"],
)
async def test_a_dead_lettered_attempt_and_its_send_to_the_dead_letter_queue_are_error_spans(
    spans: InMemorySpanExporter,
    handler: Callable[[Any, MessageContext], Awaitable[None]],
    options: dict[str, Any],
    processed: int,
    reason: str,
    error_type: str,
) -> None:
    found = await _run_until(spans, handler, {"n": "x"}, processed, **options)
    attempts = named(found, "process jobs")
    *retried, last = attempts
    for span in retried:
        assert (span.attributes or {})["interlink.outcome"] == "retried"
        _is_error(span, error_type)
    assert (last.attributes or {})["interlink.outcome"] == "dead_lettered"
    assert (last.attributes or {})["interlink.reason"] == reason
    _is_error(last, error_type)
    [send] = named(found, "send jobs.dlq")
    assert parent_of(send) == span_id(last)
    assert (send.attributes or {})["interlink.reason"] == reason
    _is_error(send, error_type)  # the move to the dead-letter queue, for that error
    assert "4242" not in everything_said([*attempts, send])
    assert_documented(found)


async def test_a_caller_traceparent_is_kept_and_untraced_publishes_add_none() -> None:
    broker = await open_broker("memory://")
    try:
        assert not _tracing.enabled()
        await broker.publish("q", {"n": 1})
        own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert _tracing.enabled()
        await broker.publish("q", {"n": 2}, headers={"traceparent": own})
        consumer = broker.consume("q")
        headers = []
        async for delivery in consumer:
            headers.append(dict(delivery.message.headers))
            await delivery.ack()
            if len(headers) == 2:
                break
        await consumer.cancel()
        assert headers == [{}, {"traceparent": own}]
        [publish] = exporter.get_finished_spans()
        assert publish.name == "publish q"  # a span all the same, the caller's context kept
        provider.shutdown()
    finally:
        await broker.close()


# -- observability.tracing.messages: new_trace ------------------------------------------------
@pytest.fixture
def new_traces() -> Iterator[None]:
    _tracing.set_message_traces("new_trace")
    yield
    _tracing.set_message_traces("continue")


async def test_with_new_trace_each_attempt_starts_a_trace_linked_to_the_publish(
    spans: InMemorySpanExporter, new_traces: None
) -> None:
    calls: list[int] = []

    async def job(body: Any, ctx: MessageContext) -> None:
        calls.append(ctx.message.attempt)
        if len(calls) == 1:
            raise ValueError("once")

    found = await _run_until(spans, job, {"n": 1}, 2)
    [publish] = named(found, "publish jobs")
    first, second = named(found, "process jobs")
    assert publish.context is not None
    traces = {publish.context.trace_id}
    for attempt in (first, second):
        assert attempt.context is not None
        assert attempt.parent is None  # a root: the trace is the attempt's own
        assert attempt.context.trace_id not in traces
        traces.add(attempt.context.trace_id)
        [link] = attempt.links
        assert (link.context.trace_id, link.context.span_id) == (
            publish.context.trace_id,
            publish.context.span_id,
        )
        [handler] = [s for s in named(found, "handler job") if parent_of(s) == span_id(attempt)]
        assert handler.context is not None
        assert handler.context.trace_id == attempt.context.trace_id
    # each delivery is still seen in the producer's trace
    receives = named(found, "receive jobs")
    assert len(receives) == 2
    assert {parent_of(r) for r in receives} == {span_id(publish)}
    _is_error(first, "ValueError")


async def test_with_new_trace_a_message_without_context_starts_a_trace_with_no_link(
    spans: InMemorySpanExporter, new_traces: None
) -> None:
    broker = await open_broker("memory://")
    done: list[str] = []

    async def job(body: Any, ctx: MessageContext) -> None:
        done.append(ctx.message.id)

    worker = Worker(broker)
    worker.add_handler("jobs", job, name="job")
    await worker.start()
    try:
        untraced = _tracing.untraced_publish(broker)
        assert untraced is not None
        await untraced("jobs", b"{}", message_id="m-1")
        await eventually(lambda: done == ["m-1"], "handled")
    finally:
        await worker.stop()
        await broker.close()
    [attempt] = named(list(spans.get_finished_spans()), "process jobs")
    assert attempt.parent is None
    assert list(attempt.links) == []


def test_configure_tracing_sets_the_message_traces_and_its_shutdown_resets_them() -> None:
    from interlink.core.errors import ConfigError
    from interlink.service._config import TracingConfig

    stop = _tracing.configure_tracing(
        TracingConfig(messages="new_trace"), exporter=InMemorySpanExporter()
    )
    try:
        assert _tracing._message_traces == "new_trace"
    finally:
        stop()
    assert _tracing._message_traces == "continue"
    with pytest.raises(ConfigError, match="message traces must be one of"):
        _tracing.set_message_traces("linked")
    assert _tracing._message_traces == "continue"


async def test_a_handlers_exception_is_recorded_with_its_text_redacted(
    spans: InMemorySpanExporter,
) -> None:
    from interlink.observability import REDACTED, REDACTOR

    secret = "handler-SECRET-4e1f0c77"
    REDACTOR.add_secrets([secret])

    async def leaky(body: Any, ctx: MessageContext) -> None:
        raise RuntimeError(f"upstream refused {secret} with Authorization: Bearer tok-9f8e7d6c")

    found = await _run_until(spans, leaky, {"n": 1}, 3, max_attempts=3)
    handlers = named(found, "handler job")
    assert len(handlers) == 3
    for span in handlers:
        assert (span.attributes or {})["error.type"] == "RuntimeError"
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == (
            f"RuntimeError: upstream refused {REDACTED} with Authorization: {REDACTED} {REDACTED}"
        )
        [event] = span.events
        assert event.name == "exception"
        attributes = event.attributes or {}
        assert attributes["exception.type"] == "RuntimeError"
        assert REDACTED in str(attributes["exception.message"])
        assert "in leaky" in str(attributes["exception.stacktrace"])  # still a stack trace
    said = everything_said(found)
    assert secret not in said
    assert "tok-9f8e7d6c" not in said
    assert_documented(found)
