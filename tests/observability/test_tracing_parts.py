"""Tracing, part by part: webhook outcomes, client failures, transforms, the SDK setup, no-op."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from interlink.client import ApiClient
from interlink.core.errors import ConfigError, ConnectError, TransformError
from interlink.messaging import MemoryBroker, Message, open_broker
from interlink.messaging._handler import build_handler
from interlink.observability import _tracing, configure_tracing, tracing_enabled
from interlink.observability._lean import LeanTracerProvider
from interlink.service._config import TracingConfig
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream
from interlink.webhooks import WebhookReceiver, WebhookSource
from tests.webhooks.signing import SECRET, standard_headers

NOW = 1_800_000_000
BODY = b'{"type":"invoice.paid"}'
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- webhooks -------------------------------------------------------------------------------
@pytest.fixture
async def http(broker: MemoryBroker) -> AsyncIterator[httpx.AsyncClient]:
    source = WebhookSource(
        "billing", path="/webhooks/billing", scheme="standard", secrets=[SECRET], queue="billing"
    )
    async with WebhookReceiver([source], broker=broker) as receiver:
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
            yield client


async def post(http: httpx.AsyncClient, **extra: str) -> httpx.Response:
    import time

    headers = standard_headers("msg_1", int(time.time()), BODY)
    headers.update(extra)
    return await http.post("/webhooks/billing", content=BODY, headers=headers)


async def test_a_rejected_webhook_is_a_4xx_server_span_without_error_status(
    http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    response = await post(http, **{"webhook-signature": "v1,AAAA"})
    assert response.status_code == 401
    span = only(spans, "POST /webhooks/billing")
    assert attributes(span)["interlink.webhook.outcome"] == "rejected"
    assert attributes(span)["interlink.webhook.reason"] == "no_matching_signature"
    assert attributes(span)["http.response.status_code"] == 401
    assert span.status.status_code is StatusCode.UNSET  # 4xx: the sender's problem
    assert [s.name for s in spans.get_finished_spans()] == ["POST /webhooks/billing"]


async def test_an_incoming_traceparent_is_the_parent_of_the_webhook_span(
    http: httpx.AsyncClient, broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    assert (await post(http, traceparent=TRACEPARENT)).status_code == 200
    span = only(spans, "POST /webhooks/billing")
    assert span.parent is not None
    assert span.parent.span_id == 0x00F067AA0BA902B7
    assert span.context is not None
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert only(spans, "publish billing").parent.span_id == span.context.span_id  # type: ignore[union-attr]


async def test_a_webhook_that_cannot_be_stored_is_a_5xx_error_span(
    http: httpx.AsyncClient, broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    await broker.close()
    response = await post(http)
    assert response.status_code == 503
    span = only(spans, "POST /webhooks/billing")
    assert attributes(span)["interlink.webhook.outcome"] == "unavailable"
    assert attributes(span)["error.type"] == "503"
    assert span.status.status_code is StatusCode.ERROR
    publish = only(spans, "publish billing")
    assert attributes(publish)["error.type"] == "interlink.core.errors.PublishError"
    assert publish.status.status_code is StatusCode.ERROR


async def test_a_webhook_with_an_unknown_method_is_other_with_the_method_as_sent(
    http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    import time

    headers = standard_headers("msg_1", int(time.time()), BODY)
    for method in ("PURGE", "PURGE", "POST"):  # twice: the cached span attributes too
        response = await http.request(method, "/webhooks/billing", content=BODY, headers=headers)
        assert response.status_code == (200 if method == "POST" else 405)
    # Methods are case-sensitive: a lower-case one (httpx would upper-case it) is unknown too.
    span, token = _tracing.start_webhook(
        "billing", "/webhooks/billing", {**_webhook_scope(), "method": "post"}, {}
    )
    _tracing.end_webhook(span, token, 405, "method_not_allowed", None, None)
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    other, post_ = "HTTP /webhooks/billing", "POST /webhooks/billing"  # HTTP: semconv's name
    assert [s.name for s in server] == [other, other, post_, other]
    for span, sent in zip([*server[:2], server[3]], ("PURGE", "PURGE", "post"), strict=True):
        assert attributes(span)["http.request.method"] == "_OTHER"
        assert attributes(span)["http.request.method_original"] == sent  # as sent, case kept
        assert attributes(span)["interlink.webhook.outcome"] == "method_not_allowed"
        assert span.status.status_code is StatusCode.UNSET  # a 405: the sender's problem
    assert attributes(server[2])["http.request.method"] == "POST"
    assert "http.request.method_original" not in attributes(server[2])


async def test_a_webhook_with_a_query_records_it_with_secret_values_redacted(
    http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    import time

    for n, query in enumerate(("?shop=7&token=s3cr3t-tok", "", "?shop=8")):
        headers = standard_headers(f"msg_q{n}", int(time.time()), BODY)
        response = await http.post(f"/webhooks/billing{query}", content=BODY, headers=headers)
        assert response.status_code == 200
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [attributes(s).get("url.query") for s in server] == [
        "shop=7&token=REDACTED",
        None,  # no query, no attribute (and the cached attributes stay without one)
        "shop=8",
    ]
    assert all(attributes(s)["interlink.webhook.outcome"] == "accepted" for s in server)


_PEER_ATTRIBUTES = (
    "client.address",
    "network.peer.address",
    "network.protocol.version",
    "server.address",
    "server.port",
    "url.scheme",
    "user_agent.original",
)


def _peer(span: ReadableSpan) -> dict[str, Any]:
    return {key: attributes(span).get(key) for key in _PEER_ATTRIBUTES}


async def test_the_webhook_span_names_the_sender_its_user_agent_and_the_server_it_reached(
    http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    """The conventions' recommended attributes; a forwarded address is not believed unasked."""
    import time

    agents = ("Stripe/1.0 (+https://stripe.com/docs/webhooks)", "Shopify-Captain-Hook", None)
    for n, agent in enumerate(agents):
        headers = standard_headers(f"msg_p{n}", int(time.time()), BODY)
        headers["x-forwarded-for"] = "203.0.113.9"  # any sender can write it: not its address
        headers["x-forwarded-host"] = "hooks.example.com"
        if agent is None:
            response = await http.post(
                "/webhooks/billing", content=BODY, headers={**headers, "user-agent": ""}
            )
        else:
            response = await http.post(
                "/webhooks/billing", content=BODY, headers={**headers, "user-agent": agent}
            )
        assert response.status_code == 200
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    expected = {
        "client.address": "127.0.0.1",  # httpx's ASGI transport is the peer
        "network.peer.address": "127.0.0.1",
        "network.protocol.version": "1.1",
        "server.address": "hooks.test",
        "server.port": 80,  # none in Host: the scheme's
        "url.scheme": "http",
    }
    # Each sender its own (the attributes are cached per User-Agent, not shared across them).
    assert [_peer(span) for span in server] == [
        {**expected, "user_agent.original": agent} for agent in agents
    ]


async def test_behind_a_trusted_proxy_the_webhook_span_takes_what_it_forwarded(
    broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    import time

    source = WebhookSource(
        "billing", path="/webhooks/billing", scheme="standard", secrets=[SECRET], queue="billing"
    )
    async with WebhookReceiver([source], broker=broker, trust_forwarded=True) as receiver:
        transport = httpx.ASGITransport(app=receiver, client=("10.0.0.2", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy:8080") as http:
            forwarded = {
                # The last entry is the one the proxy added; the first is the sender's own say.
                "x-forwarded-for": "192.0.2.1, 203.0.113.9",
                "x-forwarded-proto": "https",
                "x-forwarded-host": "hooks.example.com",
                "user-agent": "Stripe/1.0",
            }
            for n, extra in enumerate(({}, forwarded)):
                headers = standard_headers(f"msg_t{n}", int(time.time()), BODY)
                response = await http.post(
                    "/webhooks/billing", content=BODY, headers={**headers, **extra}
                )
                assert response.status_code == 200
    direct, proxied = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert _peer(direct) == {
        "client.address": "10.0.0.2",
        "network.peer.address": "10.0.0.2",
        "network.protocol.version": "1.1",
        "server.address": "proxy",
        "server.port": 8080,
        "url.scheme": "http",
        "user_agent.original": f"python-httpx/{httpx.__version__}",
    }
    assert _peer(proxied) == {
        "client.address": "203.0.113.9",
        "network.peer.address": "10.0.0.2",  # the connection's: the proxy
        "network.protocol.version": "1.1",
        "server.address": "hooks.example.com",
        "server.port": 443,
        "url.scheme": "https",
        "user_agent.original": "Stripe/1.0",
    }


async def test_a_long_user_agent_is_recorded_whole_but_not_kept_in_the_attribute_cache(
    http: httpx.AsyncClient, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any sender, signed or not, picks its User-Agent: the cache must not keep what it sends."""
    import time

    monkeypatch.setattr(_tracing, "_webhook_spans", {})
    agents = ("a" * 600, "Stripe/1.0")
    for n, agent in enumerate(agents):
        headers = {**standard_headers(f"msg_l{n}", int(time.time()), BODY), "user-agent": agent}
        response = await http.post("/webhooks/billing", content=BODY, headers=headers)
        assert response.status_code == 200
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [attributes(span)["user_agent.original"] for span in server] == list(agents)
    assert [key[7] for key in _tracing._webhook_spans] == ["Stripe/1.0"]


@pytest.mark.parametrize(
    ("host", "split"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8443", ("example.com", 8443)),
        ("192.0.2.1:80", ("192.0.2.1", 80)),
        ("[::1]:8000", ("::1", 8000)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),  # no brackets: no port can be told apart
        ("example.com:", ("example.com:", None)),
        ("example.com:https", ("example.com:https", None)),
        ("example.com:65536", ("example.com:65536", None)),
        ("example.com:\u0663", ("example.com:\u0663", None)),  # a digit, but not an ASCII one
        ("[::1", ("[::1", None)),
        ("[::1]8000", ("[::1]8000", None)),
        ("[]", ("", None)),  # no address at all: no server.address
    ],
)
def test_a_host_is_split_into_address_and_port_and_a_malformed_one_stays_whole(
    host: str, split: tuple[str, int | None]
) -> None:
    assert _tracing._split_host(host) == split


def test_the_peer_attributes_leave_out_what_the_request_does_not_tell() -> None:
    peer = _tracing._peer_attributes
    assert peer("http", None, None, None, None, None) == {}
    assert peer("http", "2", "[]", None, None, None) == {"network.protocol.version": "2"}
    # A scheme without a known default port (a proxy's own, say): the host, but no port.
    assert peer("ws", None, "example.com", None, None, None) == {"server.address": "example.com"}
    assert peer("https", None, "example.com", None, None, "203.0.113.9") == {
        "client.address": "203.0.113.9",  # forwarded, with no peer (a UNIX socket)
        "server.address": "example.com",
        "server.port": 443,
    }


async def test_untraced_the_webhook_path_makes_no_span_and_adds_no_header(
    http: httpx.AsyncClient, broker: MemoryBroker
) -> None:
    assert not tracing_enabled()
    assert (await post(http)).status_code == 200
    async with broker.consume("billing") as consumer:
        async for delivery in consumer:
            assert "traceparent" not in delivery.message.headers
            await delivery.ack()
            break


# -- the client -------------------------------------------------------------------------------
async def test_a_refused_connection_is_an_attempt_span_with_its_error_type(
    spans: InMemorySpanExporter,
) -> None:
    from tests.client.client_support import closed_port

    url = f"http://127.0.0.1:{closed_port()}"
    async with ApiClient(url, name="down", resilience={"retry": {"max_attempts": 1}}) as client:
        with pytest.raises(ConnectError) as raised:
            await client.get("/x?token=abc")
    attempt = only(spans, "GET")
    assert attempt.kind is SpanKind.CLIENT
    assert (
        attributes(attempt)["error.type"]
        == f"{type(raised.value).__module__}.{type(raised.value).__qualname__}"
    )
    assert attributes(attempt)["url.full"] == f"{url}/x?token=REDACTED"
    assert "http.response.status_code" not in attributes(attempt)
    call = only(spans, "down GET")
    assert call.status.status_code is StatusCode.ERROR
    assert attempt.parent is not None
    assert call.context is not None
    assert attempt.parent.span_id == call.context.span_id


async def test_a_4xx_answer_and_a_stream_are_traced_and_carry_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.route("GET", "/missing").reply(404)
        upstream.route("GET", "/stream").reply(200)
        async with ApiClient(upstream.url, name="up") as client:
            with pytest.raises(Exception, match="404"):
                await client.get("/missing")
            async with client.stream("GET", "/stream") as response:
                assert response.status == 200
        sent = [r.headers.get("traceparent") for r in upstream.requests]
    attempts = [s for s in spans.get_finished_spans() if s.name == "GET"]
    assert [attributes(s)["http.response.status_code"] for s in attempts] == [404, 200]
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attributes(attempts[0])["error.type"] == "404"
    calls = [s for s in spans.get_finished_spans() if s.name == "up GET"]
    assert attributes(calls[0])["http.response.status_code"] == 404
    assert calls[0].status.status_code is StatusCode.ERROR
    assert all(value is not None and value.startswith("00-") for value in sent)


async def test_a_custom_client_method_is_other_with_the_method_as_sent(
    spans: InMemorySpanExporter,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.route("PURGE", "/cache").reply(200)
        upstream.route("GET", "/x").reply(200)
        async with ApiClient(upstream.url, name="cdn") as client:
            await client.request("purge", "/cache")  # sent upper-cased, as PURGE
            await client.get("/x")
    attempt = only(spans, "HTTP")  # an attempt with an unknown method is named HTTP
    assert attempt.kind is SpanKind.CLIENT
    assert attributes(attempt)["http.request.method"] == "_OTHER"
    assert attributes(attempt)["http.request.method_original"] == "PURGE"
    assert attributes(attempt)["http.response.status_code"] == 200
    call = only(spans, "cdn PURGE")  # the call's own name keeps the method
    assert attributes(call)["http.request.method"] == "_OTHER"
    assert attributes(call)["http.request.method_original"] == "PURGE"
    for known in (only(spans, "GET"), only(spans, "cdn GET")):
        assert attributes(known)["http.request.method"] == "GET"
        assert "http.request.method_original" not in attributes(known)


def test_the_known_methods_are_the_conventions_unless_the_environment_replaces_them() -> None:
    assert _tracing.known_methods({}) == _tracing.DEFAULT_KNOWN_METHODS
    assert "PATCH" in _tracing.DEFAULT_KNOWN_METHODS
    env = _tracing.KNOWN_METHODS_ENV
    assert _tracing.known_methods({env: "GET, PURGE,,post"}) == {"GET", "PURGE", "post"}
    assert _tracing.known_methods({env: ""}) == frozenset()  # every method is _OTHER


_KNOWN_METHODS_SCRIPT = """
import asyncio, json
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from interlink.client import ApiClient
from interlink.observability import MetricsRecorder
from interlink.observability._lean import LeanTracerProvider
from interlink.testing import FakeUpstream
from tests.observability.metrics_support import exposition

exporter = InMemorySpanExporter()
trace.set_tracer_provider(LeanTracerProvider(exporter, batch=False))

async def main():
    recorder = MetricsRecorder()
    async with FakeUpstream() as upstream:
        upstream.route("PURGE", "/cache").reply(200)
        upstream.route("POST", "/x").reply(200)
        async with ApiClient(upstream.url, name="cdn") as client:
            recorder.watch_client(client)
            await client.request("PURGE", "/cache")
            await client.post("/x")
    spans = {
        s.name: dict(s.attributes) for s in exporter.get_finished_spans() if s.kind.name == "CLIENT"
    }
    methods = sorted(
        dict(labels)["method"]
        for (name, labels), _ in exposition(recorder).items()
        if name == "interlink_client_request_duration_seconds_count"
    )
    print(json.dumps({"spans": spans, "methods": methods}))

asyncio.run(main())
"""


def test_spans_and_metrics_honour_otel_instrumentation_http_known_methods() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, _tracing.KNOWN_METHODS_ENV: "GET,PURGE"}
    run = subprocess.run(
        [sys.executable, "-c", _KNOWN_METHODS_SCRIPT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["spans"]["PURGE"]["http.request.method"] == "PURGE"  # known, by the variable
    assert "http.request.method_original" not in found["spans"]["PURGE"]
    assert found["spans"]["HTTP"]["http.request.method"] == "_OTHER"  # POST is not, now
    assert found["spans"]["HTTP"]["http.request.method_original"] == "POST"
    assert found["methods"] == ["PURGE", "_OTHER"]


async def test_untraced_the_client_sends_no_traceparent() -> None:
    async with FakeUpstream() as upstream:
        upstream.route("GET", "/x").reply(200)
        async with ApiClient(upstream.url) as client:
            await client.get("/x")
        [request] = upstream.requests
    assert "traceparent" not in request.headers


async def test_a_cancelled_attempt_is_not_an_error(spans: InMemorySpanExporter) -> None:
    async with FakeUpstream() as upstream:
        gate = asyncio.Event()

        async def stall(_: Any) -> int:
            await gate.wait()
            return 200

        upstream.route("GET", "/slow").reply(stall)
        async with ApiClient(upstream.url, name="up") as client:
            task = asyncio.ensure_future(client.get("/slow"))
            await upstream.wait_for_requests(1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gate.set()
    attempt = only(spans, "GET")
    assert attempt.status.status_code is StatusCode.UNSET
    assert "error.type" not in attributes(attempt)


# -- transform -----------------------------------------------------------------------------------
class Amounts:
    name = "amounts"

    def transform(self, value: Any) -> Any:
        if not isinstance(value.get("amount"), int):
            raise TransformError("amount", "not an integer", repr(value.get("amount")))
        return value


def _message(body: object, headers: dict[str, str] | None = None) -> Message:
    return Message(id="m1", queue="q", body=json.dumps(body).encode(), headers=headers or {})


async def _noop(body: Any, ctx: Any) -> None:
    return None


def test_a_transform_failure_names_the_field_not_the_value(spans: InMemorySpanExporter) -> None:
    handler = build_handler("q", _noop, transform=Amounts())
    assert handler.decode(_message({"amount": 3})) == {"amount": 3}
    with pytest.raises(TransformError):
        handler.decode(_message({"amount": "card-4242424242424242"}))
    ok, failed = [s for s in spans.get_finished_spans() if s.name == "transform amounts"]
    assert ok.status.status_code is StatusCode.UNSET
    assert attributes(failed)["interlink.transform.field"] == "amount"
    assert attributes(failed)["error.type"] == "interlink.core.errors.TransformError"
    said = repr(attributes(failed)) + str(failed.status.description) + repr(failed.events)
    assert "4242" not in said


# -- configuration ---------------------------------------------------------------------------------
def test_exporter_none_sets_nothing_up() -> None:
    shutdown = configure_tracing(TracingConfig())
    assert not tracing_enabled()
    shutdown()


def test_console_exporter_prints_each_span_as_one_json_line_with_the_service_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutdown = configure_tracing(
        TracingConfig(exporter="console", service_name="billing-svc"), service_name="other"
    )
    assert tracing_enabled()
    with _tracing.process_span(_message({}), "h", "memory"):
        pass
    with _tracing.process_span(_message({}), "h", "memory"):
        pass
    shutdown()
    # One JSON object per line, as the JSON logs on the same stderr: a log shipper reading
    # stderr line by line takes each span whole.
    printed = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [span["name"] for span in printed] == ["process q", "process q"]
    assert {span["resource"]["attributes"]["service.name"] for span in printed} == {"billing-svc"}


def test_otlp_exporter_is_built_from_the_endpoint() -> None:
    shutdown = configure_tracing(
        TracingConfig(exporter="otlp", endpoint="http://127.0.0.1:1/v1/traces")
    )
    assert tracing_enabled()
    shutdown()  # nothing was recorded: nothing is sent


def test_sampling_is_parent_based() -> None:
    exporter = InMemorySpanExporter()
    shutdown = configure_tracing(TracingConfig(sampling_ratio=0.0), exporter=exporter)
    with _tracing.process_span(_message({}), "h", "memory"):
        pass  # a new trace: not sampled at ratio 0
    with _tracing.process_span(_message({}, {"traceparent": TRACEPARENT}), "h", "memory"):
        pass  # a sampled parent is followed
    shutdown()
    [kept] = exporter.get_finished_spans()
    assert kept.context is not None
    assert kept.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736


def test_a_provider_set_by_the_application_is_kept(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    provider = trace.get_tracer_provider()
    with caplog.at_level(logging.WARNING, "interlink.observability"):
        shutdown = configure_tracing(TracingConfig(exporter="console"))
    assert trace.get_tracer_provider() is provider
    assert "already set" in caplog.text
    shutdown()


async def test_the_service_configures_and_shuts_down_tracing(tmp_path: Path) -> None:
    path = tmp_path / "interlink.yaml"
    path.write_text(
        f"""
service: {{name: traced-svc, listen: "127.0.0.1:0"}}
broker: {{url: "sqlite:///{tmp_path / "b.db"}"}}
observability:
  tracing: {{exporter: otlp, endpoint: "http://127.0.0.1:1/v1/traces", sampling_ratio: 0.5}}
"""
    )
    async with Service(load_config(path), http=False):
        provider = trace.get_tracer_provider()
        assert isinstance(provider, LeanTracerProvider)
        assert provider.resource.attributes["service.name"] == "traced-svc"
        assert provider.sampling_ratio == 0.5


# -- the current context, read and set through the API's own ContextVar -----------------------------
def test_get_context_is_the_apis_current_context() -> None:
    assert _tracing._CURRENT is not None
    assert _tracing._find_context_var() is _tracing._CURRENT
    assert _tracing.get_context() is context_api.get_current()
    token = context_api.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert _tracing.get_context() is context_api.get_current()
        assert baggage.get_baggage("tenant", _tracing.get_context()) == "acme"
    finally:
        context_api.detach(token)
    assert baggage.get_baggage("tenant", _tracing.get_context()) is None


def test_set_current_makes_a_span_current_and_restore_brings_the_previous_context_back(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("current")
    outer = tracer.start_span("outer")
    outer_token = context_api.attach(
        baggage.set_baggage("tenant", "acme", trace.set_span_in_context(outer))
    )
    try:
        before = context_api.get_current()
        inner = tracer.start_span("inner")
        token = _tracing.set_current(inner)
        assert trace.get_current_span() is inner
        assert baggage.get_baggage("tenant") == "acme"  # the rest of the context is kept
        tracer.start_span("child").end()
        _tracing.restore(token)
        assert context_api.get_current() is before
        assert trace.get_current_span() is outer

        given = baggage.set_baggage("tenant", "given", context_api.Context())
        token = _tracing.set_current(inner, given)  # the context the caller has at hand
        assert trace.get_current_span() is inner
        assert baggage.get_baggage("tenant") == "given"
        _tracing.restore(token)
        assert context_api.get_current() is before
        inner.end()
    finally:
        context_api.detach(outer_token)
    outer.end()
    assert trace.get_current_span() is trace.INVALID_SPAN
    child = only(spans, "child")
    assert child.parent is not None
    assert child.parent.span_id == inner.get_span_context().span_id


def _failures(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.ERROR]


def test_restore_with_a_token_of_another_context_is_logged_as_the_apis_detach_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    span = trace.NonRecordingSpan(
        trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False)
    )
    foreign = contextvars.copy_context().run(_tracing.set_current, span)
    api_foreign = contextvars.copy_context().run(
        context_api.attach, trace.set_span_in_context(span)
    )
    before = context_api.get_current()
    with caplog.at_level(logging.ERROR):
        _tracing.restore(foreign)  # does not raise
        context_api.detach(api_foreign)
    assert context_api.get_current() is before
    assert trace.get_current_span() is not span
    [mine] = _failures(caplog, "interlink.observability")
    [api] = _failures(caplog, "opentelemetry.context")
    assert mine.levelno == api.levelno == logging.ERROR
    assert mine.getMessage() == api.getMessage() == "Failed to detach context"
    assert mine.exc_info is not None
    assert api.exc_info is not None
    assert mine.exc_info[0] is api.exc_info[0] is ValueError


def test_restore_twice_is_logged_and_leaves_the_context_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    span = trace.NonRecordingSpan(
        trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False)
    )
    before = context_api.get_current()
    token = _tracing.set_current(span)
    _tracing.restore(token)
    with caplog.at_level(logging.ERROR, "interlink.observability"):
        _tracing.restore(token)
    assert context_api.get_current() is before
    [record] = _failures(caplog, "interlink.observability")
    assert record.getMessage() == "Failed to detach context"


# -- publish ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "queue", [123, None, ["orders"], b"orders"], ids=["int", "None", "list", "bytes"]
)
async def test_a_publish_to_a_queue_that_is_no_str_raises_the_brokers_own_error_and_no_span(
    queue: Any, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = await open_broker("memory://")
    try:
        with monkeypatch.context() as untraced:
            untraced.setattr(trace, "_TRACER_PROVIDER", None)
            assert not tracing_enabled()
            with pytest.raises(Exception) as off:  # noqa: PT011 - compared below
                await broker.publish(queue, {"n": 1})
        assert tracing_enabled()
        with pytest.raises(type(off.value)) as on:
            await broker.publish(queue, {"n": 1})
        assert isinstance(on.value, ConfigError)
        assert str(on.value) == str(off.value)
        assert "queue name" in str(on.value)
        assert spans.get_finished_spans() == ()
        await broker.publish("orders", {"n": 1})  # tracing is on: a good queue makes its span
        assert [s.name for s in spans.get_finished_spans()] == ["publish orders"]
    finally:
        await broker.close()


async def test_the_publish_span_cache_stays_bounded_and_every_span_is_still_right(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, broker: MemoryBroker
) -> None:
    monkeypatch.setattr(_tracing, "_PUBLISHING_MAX", 2)
    monkeypatch.setattr(_tracing, "_publishing", {})
    queues = ["q1", "q2", "q3", "q4"]
    sent: list[tuple[str, str]] = []
    for queue in queues:  # a message id given
        sent.append((queue, await broker.publish(queue, {"n": 1}, message_id=f"{queue}-given")))
    for queue in queues:  # made by the broker
        sent.append((queue, await broker.publish(queue, {"n": 2})))
    assert len(_tracing._publishing) == 2
    for name, base in _tracing._publishing.values():  # no message id kept from a publish
        assert name.startswith("publish ")
        assert "messaging.message.id" not in base
    published = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert [
        (
            s.name,
            attributes(s)["messaging.destination.name"],
            attributes(s)["messaging.message.id"],
        )
        for s in published
    ] == [(f"publish {queue}", queue, message_id) for queue, message_id in sent]
    assert sent[0][1] == "q1-given"
    for span in published:
        assert attributes(span)["messaging.system"] == "memory"
        assert attributes(span)["messaging.operation.name"] == "publish"
        assert attributes(span)["messaging.operation.type"] == "send"


# -- traceparent -------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [0, 1, 3])
@pytest.mark.parametrize(
    "ids",
    [(1, 1), (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7), ((1 << 128) - 1, 1 << 63)],
    ids=["leading zero bytes", "a leading zero byte in the span id", "largest"],
)
def test_traceparent_of_is_what_the_w3c_propagator_writes(ids: tuple[int, int], flags: int) -> None:
    trace_id, span_id = ids
    context = trace.SpanContext(trace_id, span_id, False, trace.TraceFlags(flags))
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(
        carrier, trace.set_span_in_context(trace.NonRecordingSpan(context))
    )
    assert _tracing.traceparent_of(trace_id, span_id, flags) == carrier["traceparent"]


# -- the webhook span's parent, from the headers it is given --------------------------------------
def _webhook_scope(*scope_headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/billing",
        "scheme": "https",
        "headers": list(scope_headers),
    }


# In the scope, but not in the headers handed over: start_webhook reads the ones it is given.
ELSEWHERE = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


def test_start_webhook_takes_its_parent_and_trace_state_from_the_headers_given(
    spans: InMemorySpanExporter,
) -> None:
    headers = {
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=abc,x=1",
        "content-type": "application/json",
    }
    span, token = _tracing.start_webhook(
        "billing", "/webhooks/billing", _webhook_scope(ELSEWHERE), headers
    )
    assert trace.get_current_span() is span
    context = span.get_span_context()
    assert context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert context.trace_state.to_header() == "vendor=abc,x=1"
    _tracing.end_webhook(span, token, 200, "accepted", None, None)
    assert trace.get_current_span() is trace.INVALID_SPAN
    done = only(spans, "POST /webhooks/billing")
    assert done.kind is SpanKind.SERVER
    assert done.parent is not None
    assert (done.parent.trace_id, done.parent.span_id, done.parent.is_remote) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        True,
    )
    assert done.parent.trace_flags.sampled
    assert done.parent.trace_state.to_header() == "vendor=abc,x=1"
    assert done.context is not None
    assert done.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert done.context.trace_state.to_header() == "vendor=abc,x=1"


@pytest.mark.parametrize(
    "headers",
    [{}, {"tracestate": "vendor=abc"}, {"traceparent": "not-a-traceparent"}],
    ids=["none", "a tracestate alone", "an invalid traceparent"],
)
def test_start_webhook_without_a_valid_traceparent_starts_a_new_trace(
    headers: dict[str, str], spans: InMemorySpanExporter
) -> None:
    span, token = _tracing.start_webhook(
        "billing", "/webhooks/billing", _webhook_scope(ELSEWHERE), headers
    )
    _tracing.end_webhook(span, token, 200, "accepted", None, None)
    done = only(spans, "POST /webhooks/billing")
    assert done.parent is None
    assert done.context is not None
    assert done.context.is_valid
    assert done.context.trace_id not in (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x0AF7651916CD43DD8448EB211C80319C,
    )
    assert done.context.trace_state.to_header() == ""


def test_start_webhook_inside_a_current_span_is_its_child(spans: InMemorySpanExporter) -> None:
    """A webhook served inside another span (an ASGI middleware's, say) joins that trace."""
    with trace.get_tracer("middleware").start_as_current_span("outer") as outer:
        span, token = _tracing.start_webhook("billing", "/webhooks/billing", _webhook_scope(), {})
        assert trace.get_current_span() is span
        _tracing.end_webhook(span, token, 200, "accepted", None, None)
        assert trace.get_current_span() is outer
    done = only(spans, "POST /webhooks/billing")
    assert done.parent is not None
    assert done.parent.span_id == outer.get_span_context().span_id
    assert done.context is not None
    assert done.context.trace_id == outer.get_span_context().trace_id


def test_start_webhook_keeps_what_else_the_context_holds(spans: InMemorySpanExporter) -> None:
    """Baggage set before the webhook span stays readable inside it, and after it."""
    outer = context_api.attach(baggage.set_baggage("tenant", "t-1"))
    try:
        span, token = _tracing.start_webhook("billing", "/webhooks/billing", _webhook_scope(), {})
        assert trace.get_current_span() is span
        assert baggage.get_baggage("tenant") == "t-1"
        _tracing.end_webhook(span, token, 200, "accepted", None, None)
        assert baggage.get_baggage("tenant") == "t-1"
    finally:
        context_api.detach(outer)
    assert only(spans, "POST /webhooks/billing").parent is None  # baggage is no parent


async def test_an_incoming_tracestate_is_kept_by_the_webhook_and_publish_spans_and_sent_on(
    http: httpx.AsyncClient, broker: MemoryBroker, spans: InMemorySpanExporter
) -> None:
    response = await post(http, traceparent=TRACEPARENT, tracestate="vendor=abc,x=1")
    assert response.status_code == 200
    server = only(spans, "POST /webhooks/billing")
    publish = only(spans, "publish billing")
    assert server.parent is not None
    assert server.parent.span_id == 0x00F067AA0BA902B7
    for span in (server, publish):
        assert span.context is not None
        assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
        assert span.context.trace_state.to_header() == "vendor=abc,x=1"
    async with broker.consume("billing") as consumer:
        async for delivery in consumer:
            headers = delivery.message.headers
            await delivery.ack()
            break
    assert publish.context is not None
    assert headers["traceparent"] == (
        f"00-{publish.context.trace_id:032x}-{publish.context.span_id:016x}-01"
    )
    assert headers["tracestate"] == "vendor=abc,x=1"


# -- the webhook span's attributes, shared between spans of a kind -----------------------------
def test_an_attribute_set_on_one_webhook_span_stays_on_that_span(
    spans: InMemorySpanExporter,
) -> None:
    """Spans of one source share their attributes until one of them changes its own."""
    first, first_token = _tracing.start_webhook(
        "billing", "/webhooks/billing", _webhook_scope(), {}
    )
    first.set_attribute("app.note", "first only")
    _tracing.restore(first_token)
    fourth, fourth_token = _tracing.start_webhook(
        "billing", "/webhooks/billing", _webhook_scope(), {}
    )
    fourth.set_attributes({"app.more": 1})
    _tracing.end_webhook(fourth, fourth_token, 200, "accepted", None, None)
    second, second_token = _tracing.start_webhook(
        "billing", "/webhooks/billing", _webhook_scope(), {}
    )
    _tracing.end_webhook(second, second_token, 200, "accepted", None, None)
    third, third_token = _tracing.start_webhook(
        "billing", "/webhooks/billing", _webhook_scope(), {}
    )
    _tracing.end_webhook(third, third_token, 503, "unavailable", None, None)
    first.end()
    done = {span.context.span_id: span for span in spans.get_finished_spans() if span.context}
    one, two, three, four = (
        done[span.get_span_context().span_id] for span in (first, second, third, fourth)
    )
    base = {
        "http.request.method": "POST",
        "url.path": "/webhooks/billing",
        "url.scheme": "https",
        "http.route": "/webhooks/billing",
        "interlink.webhook.source": "billing",
    }
    assert dict(one.attributes or {}) == {**base, "app.note": "first only"}
    assert dict(two.attributes or {}) == {
        **base,
        "interlink.webhook.outcome": "accepted",
        "http.response.status_code": 200,
    }
    assert dict(three.attributes or {}) == {
        **base,
        "error.type": "503",
        "interlink.webhook.outcome": "unavailable",
        "http.response.status_code": 503,
    }
    assert dict(four.attributes or {}) == {**dict(two.attributes or {}), "app.more": 1}
    assert three.status.status_code is StatusCode.ERROR
    assert two.status.status_code is StatusCode.UNSET


def test_shared_span_attributes_refuse_every_change() -> None:
    shared = _tracing.SharedAttributes({"a": 1})
    changes: list[Callable[[], object]] = [
        lambda: shared.__setitem__("b", 2),
        lambda: shared.__delitem__("a"),
        lambda: shared.update({"b": 2}),
        lambda: shared.pop("a"),
        lambda: shared.popitem(),
        lambda: shared.clear(),
        lambda: shared.setdefault("b", 2),
        lambda: shared.__ior__({"b": 2}),
    ]
    for change in changes:
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert shared == {"a": 1}


def test_the_webhook_span_cache_stays_bounded(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tracing, "_webhook_spans", {})
    monkeypatch.setattr(_tracing, "_WEBHOOK_SPANS_MAX", 3)
    for n in range(6):
        scope = {**_webhook_scope(), "path": f"/webhooks/billing/{n}"}
        span, token = _tracing.start_webhook("billing", "/webhooks/billing", scope, {})
        _tracing.end_webhook(span, token, 200, "accepted", None, None)
    # Full, it started again: what it holds is the latest requests' attributes.
    assert [key[3] for key in _tracing._webhook_spans] == [
        f"/webhooks/billing/{n}" for n in (3, 4, 5)
    ]
    paths = [span.attributes["url.path"] for span in spans.get_finished_spans() if span.attributes]
    assert paths == [f"/webhooks/billing/{n}" for n in range(6)]
