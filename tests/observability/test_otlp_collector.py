"""``exporter: otlp`` end to end: a served webhook's spans reach a collector over HTTP.

The collector is a real HTTP server on loopback in a thread of its own (the
OTLP exporter posts from the provider's export thread, and the service's last
flush blocks the event loop, so a server on that loop could not answer it).
It decodes each request as OTLP/HTTP protobuf, as a collector would.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from interlink.service._load import load_config
from interlink.service._runtime import Service
from tests.webhooks.signing import SECRET, standard_headers


@dataclass
class Collected:
    """What the collector was sent: each request's path and headers, and every span."""

    paths: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    services: set[str] = field(default_factory=set)
    spans: list[ProtoSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, name: str) -> list[ProtoSpan]:
        with self.lock:
            return [span for span in self.spans if span.name == name]


@contextmanager
def collector() -> Iterator[tuple[str, Collected]]:
    """An OTLP/HTTP traces receiver on 127.0.0.1: its URL and what it collected."""
    collected = Collected()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            with collected.lock:
                collected.paths.append(self.path)
                collected.content_types.append(self.headers.get("Content-Type", ""))
                for resource_spans in request.resource_spans:
                    for attribute in resource_spans.resource.attributes:
                        if attribute.key == "service.name":
                            collected.services.add(attribute.value.string_value)
                    for scope_spans in resource_spans.scope_spans:
                        collected.spans.extend(scope_spans.spans)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads what was collected, not the access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-collector", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", collected
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


CONFIG = """
service: {{name: billing, listen: "127.0.0.1:0"}}
broker: {{url: "sqlite:///{db}"}}
webhooks:
  shop: {{path: /webhooks/shop, scheme: standard, secrets: ["{secret}"], publish_to: orders}}
observability:
  tracing: {{exporter: otlp, endpoint: "{endpoint}", service_name: billing-traces}}
"""


async def test_a_webhooks_spans_reach_the_collector_at_the_configured_endpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "interlink.yaml"
    with collector() as (endpoint, collected):
        path.write_text(CONFIG.format(db=tmp_path / "b.db", secret=SECRET, endpoint=endpoint))
        async with Service(load_config(path)) as service, aiohttp.ClientSession() as session:
            body = json.dumps({"amount": 42}).encode()
            headers = standard_headers("wh_otlp", int(time.time()), body)
            async with session.post(
                f"{service.url}/webhooks/shop", data=body, headers=headers
            ) as answer:
                assert answer.status == 200
        # Leaving the service flushed its spans: they are at the collector now, not later.
        [receive] = collected.named("POST /webhooks/shop")
        [publish] = collected.named("publish orders")

    assert set(collected.paths) == {"/v1/traces"}
    assert set(collected.content_types) == {"application/x-protobuf"}
    assert collected.services == {"billing-traces"}
    assert receive.kind == ProtoSpan.SpanKind.SPAN_KIND_SERVER
    assert receive.parent_span_id == b""
    assert publish.kind == ProtoSpan.SpanKind.SPAN_KIND_PRODUCER
    assert publish.trace_id == receive.trace_id
    assert publish.parent_span_id == receive.span_id
    said = {a.key: a.value for a in receive.attributes}
    assert said["interlink.webhook.outcome"].string_value == "accepted"
    assert said["http.response.status_code"].int_value == 200
    assert {a.key: a.value.string_value for a in publish.attributes}[
        "messaging.message.id"
    ] == "shop:wh_otlp"
    assert receive.end_time_unix_nano >= publish.end_time_unix_nano > receive.start_time_unix_nano


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_collector_that_is_down_costs_the_stop_at_most_the_exporters_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace

    from interlink.observability._lean import LeanTracerProvider

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # seconds; the SDK's default: 10
    path = tmp_path / "interlink.yaml"
    endpoint = f"http://127.0.0.1:{_closed_port()}/v1/traces"
    path.write_text(CONFIG.format(db=tmp_path / "b.db", secret=SECRET, endpoint=endpoint))
    async with Service(load_config(path)) as service, aiohttp.ClientSession() as session:
        provider = trace.get_tracer_provider()
        assert isinstance(provider, LeanTracerProvider)
        body = json.dumps({"amount": 42}).encode()
        headers = standard_headers("wh_down", int(time.time()), body)
        async with session.post(f"{service.url}/webhooks/shop", data=body, headers=headers) as r:
            assert r.status == 200  # the webhook does not wait for its trace
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping

    # The exporter retried with back-off until its timeout, then the batch counted as lost.
    # About 1 s: the timeout. With the SDK's default of 10 s the same stop takes about 6 s
    # (its back-off gives up once the next wait would pass the timeout).
    assert stopped_in < 4, f"the stop took {stopped_in:.1f} s"
    assert (provider.exported_spans, provider.failed_spans) == (0, 2)
