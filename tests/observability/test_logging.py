"""Structured logs: JSON lines, correlation and message ids, X-Request-ID in and out, the CLI."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from interlink.client import ApiClient
from interlink.observability import (
    CORRELATION_HEADER,
    RequestIdMiddleware,
    bind_message,
    bound,
    configure_logging,
    current_correlation_id,
    unbind_message,
)
from interlink.observability._logging import adopt_trace_id, restore_correlation_id
from interlink.service._cli import _logging
from interlink.service._config import LoggingConfig
from interlink.service._load import load_config
from interlink.service._runtime import Service
from interlink.testing import FakeUpstream, Received
from tests.observability import logging_support
from tests.observability.logging_support import Captured, capture_json_logs, write
from tests.polling import eventually
from tests.webhooks.signing import SECRET, standard_headers

_log = logging.getLogger("interlink.tests")


@pytest.fixture
def logs() -> Iterator[Captured]:
    yield from capture_json_logs()


# -- the lines ------------------------------------------------------------------------------
def test_stdlib_lines_are_json_with_the_bound_ids(logs: Captured) -> None:
    _log.info("outside")
    with bound(correlation_id="req-1", message_id="shop:evt_1"):
        _log.warning("inside %s", "a handler")
    outside, inside = logs.lines()
    assert outside["event"] == "outside"
    assert "correlation_id" not in outside
    assert "message_id" not in outside
    assert inside["event"] == "inside a handler"
    assert inside["correlation_id"] == "req-1"
    assert inside["message_id"] == "shop:evt_1"
    assert inside["level"] == "warning"
    assert inside["logger"] == "interlink.tests"
    assert inside["timestamp"].endswith("Z")


def test_structlog_loggers_share_the_format_and_the_ids(logs: Captured) -> None:
    with bound(correlation_id="req-2"):
        structlog.get_logger("interlink.tests").info("charged", amount=3)
    (line,) = logs.lines()
    assert line == {
        "event": "charged",
        "amount": 3,
        "correlation_id": "req-2",
        "logger": "interlink.tests",
        "level": "info",
        "timestamp": line["timestamp"],
    }


def test_exceptions_are_rendered_into_the_line(logs: Captured) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        _log.exception("it failed")
    (line,) = logs.lines()
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_an_active_span_gives_the_trace_id_and_is_the_correlation_id(logs: Captured) -> None:
    context = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        _log.info("traced")
    (line,) = logs.lines()
    assert line["trace_id"] == f"{0x1234:032x}"
    assert line["span_id"] == f"{0x99:016x}"
    assert line["correlation_id"] == line["trace_id"]


def test_levels_and_formats() -> None:
    root = logging.getLogger()
    saved = root.level
    buffer = _Buffer()
    handler = configure_logging(LoggingConfig(level="warning", format="auto"), stream=buffer)
    try:
        _log.info("dropped")
        _log.warning("kept")
        assert [json.loads(line)["event"] for line in buffer.getvalue().splitlines()] == ["kept"]
        buffer.tty = True  # auto on a terminal: rendered for people
        handler = configure_logging(LoggingConfig(format="auto"), stream=buffer)
        _log.info("for people")
        last = buffer.getvalue().splitlines()[-1]
        assert "for people" in last
        assert not last.startswith("{")
        assert sum(isinstance(h, type(handler)) for h in root.handlers) == 1  # replaced
        with pytest.raises(ValueError, match="log format"):
            configure_logging(format="xml", stream=buffer)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


class _Buffer(io.StringIO):
    """A buffer that says it is a terminal when told to."""

    tty = False

    def isatty(self) -> bool:
        return self.tty


def test_the_cli_configures_from_the_file_and_log_level_wins() -> None:
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    service: Any = SimpleNamespace(
        config=SimpleNamespace(
            observability=SimpleNamespace(logging=LoggingConfig(level="error", format="json"))
        )
    )
    try:
        _logging(service, None)
        assert root.level == logging.ERROR
        _logging(service, "debug")
        assert root.level == logging.DEBUG
        assert len(root.handlers) == len(saved_handlers) + 1
    finally:
        for handler in root.handlers[:]:
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)


# -- binding --------------------------------------------------------------------------------
def test_a_message_binds_its_id_and_the_correlation_id_it_was_published_with() -> None:
    tokens = bind_message("shop:1", {CORRELATION_HEADER: "req-9"})
    assert current_correlation_id() == "req-9"
    unbind_message(tokens)
    assert current_correlation_id() is None
    tokens = bind_message("shop:2", {CORRELATION_HEADER: "not a usable id\n"})
    assert current_correlation_id() == "shop:2"  # no usable header: the message id
    unbind_message(tokens)


def test_a_message_without_a_correlation_header_is_correlated_by_its_trace_id() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    tokens = bind_message("shop:3", {"traceparent": traceparent})
    assert current_correlation_id() == trace_id
    unbind_message(tokens)
    tokens = bind_message("shop:4", {CORRELATION_HEADER: "req-5", "traceparent": traceparent})
    assert current_correlation_id() == "req-5"  # the header the publisher bound wins
    unbind_message(tokens)
    zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    for bad in ("junk", zero, "00-\u00e9"):
        tokens = bind_message("shop:5", {"traceparent": bad})
        assert current_correlation_id() == "shop:5"  # no valid trace id: the message id
        unbind_message(tokens)
    assert current_correlation_id() is None


# -- X-Request-ID on the HTTP side ----------------------------------------------------------
async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    _log.info("in the app")
    body = json.dumps({"correlation_id": current_correlation_id()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def app_client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=RequestIdMiddleware(_echo_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_the_incoming_request_id_is_bound_and_echoed(
    app_client: httpx.AsyncClient, logs: Captured
) -> None:
    response = await app_client.get("/", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json() == {"correlation_id": "abc-123"}
    assert logs.matching("in the app")[0]["correlation_id"] == "abc-123"
    assert current_correlation_id() is None  # unbound after the request


async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(
    app_client: httpx.AsyncClient,
) -> None:
    first = (await app_client.get("/")).headers["x-request-id"]
    second = (await app_client.get("/")).headers["x-request-id"]
    assert len(first) == 32
    assert first != second
    unsafe = await app_client.get("/", headers={"X-Request-ID": "x" * 200})
    assert unsafe.headers["x-request-id"] != "x" * 200
    assert unsafe.json()["correlation_id"] == unsafe.headers["x-request-id"]


async def test_without_a_request_id_the_active_trace_id_is_used(
    app_client: httpx.AsyncClient,
) -> None:
    context = SpanContext(trace_id=0xABC, span_id=0x1, is_remote=False)
    with trace.use_span(NonRecordingSpan(context)):
        response = await app_client.get("/")
    assert response.headers["x-request-id"] == f"{0xABC:032x}"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    response = await app_client.get("/", headers={"traceparent": traceparent})
    assert response.headers["x-request-id"] == trace_id
    response = await app_client.get("/", headers={"traceparent": "00-junk"})
    assert len(response.headers["x-request-id"]) == 32


async def _adopting_app(scope: Any, receive: Any, send: Any) -> None:
    """Adopts the trace id in its ``x-trace`` header, as the webhook receiver does its span's."""
    trace_id = int(dict(scope["headers"])[b"x-trace"])
    token = adopt_trace_id(trace_id)
    try:
        _log.info("in the adopting app")
        body = json.dumps(
            {"adopted": token is not None, "correlation_id": current_correlation_id()}
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})
    finally:
        if token is not None:
            restore_correlation_id(token)


async def test_a_made_up_request_id_gives_way_to_the_trace_id_the_app_adopts(
    logs: Captured,
) -> None:
    transport = httpx.ASGITransport(app=RequestIdMiddleware(_adopting_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        made_up = await client.get("/", headers={"x-trace": str(0xABC)})
        given = await client.get("/", headers={"x-trace": str(0xABC), "X-Request-ID": "req-1"})
        traceparent = f"00-{0xDEF:032x}-00f067aa0ba902b7-01"
        traced = await client.get("/", headers={"x-trace": str(0xDEF), "traceparent": traceparent})
        invalid = await client.get("/", headers={"x-trace": "0"})
    assert made_up.json() == {"adopted": True, "correlation_id": f"{0xABC:032x}"}
    assert made_up.headers["x-request-id"] == f"{0xABC:032x}"  # the echo follows
    assert given.json() == {"adopted": False, "correlation_id": "req-1"}
    assert given.headers["x-request-id"] == "req-1"
    assert traced.json() == {"adopted": False, "correlation_id": f"{0xDEF:032x}"}
    assert not invalid.json()["adopted"]  # no valid trace id: the made-up one stays
    assert invalid.headers["x-request-id"] == invalid.json()["correlation_id"]
    assert len(invalid.headers["x-request-id"]) == 32
    lines = logs.matching("in the adopting app")
    assert [line["correlation_id"] for line in lines] == [
        f"{0xABC:032x}",
        "req-1",
        f"{0xDEF:032x}",
        invalid.headers["x-request-id"],
    ]
    assert adopt_trace_id(0xABC) is None  # outside a request: nothing to swap
    assert current_correlation_id() is None


# -- X-Request-ID on outbound calls ---------------------------------------------------------
async def test_the_client_sends_the_bound_correlation_id_upstream() -> None:
    async with FakeUpstream() as upstream, ApiClient(upstream.url) as client:
        upstream.route("GET", "/x").reply(200, 200, 200)
        await client.get("/x")
        with bound(correlation_id="req-77"):
            await client.get("/x")
            await client.get("/x", headers={"X-Request-ID": "mine"})
        sent = [r.headers.get("X-Request-ID") for r in upstream.received("GET", "/x")]
    assert sent == [None, "req-77", "mine"]


# -- through a running Service --------------------------------------------------------------
def _config(tmp_path: Path, upstream_url: str) -> Path:
    return write(
        tmp_path,
        f"""
service:
  name: logging-test
  listen: 127.0.0.1:0
broker:
  url: sqlite:///{tmp_path / "broker.db"}
clients:
  upstream:
    base_url: {upstream_url}
webhooks:
  shop:
    path: /webhooks/shop
    scheme: standard
    secrets: ["{SECRET}"]
    publish_to: orders
queues:
  orders:
    handler: tests.observability.logging_support:handle
    max_attempts: 1
""",
    )


async def _one_webhook(
    tmp_path: Path,
    logs: Captured,
    order: str,
    extra: dict[str, str],
    also: Callable[[aiohttp.ClientSession, dict[str, str]], Awaitable[None]] | None = None,
) -> tuple[str, Received]:
    """Post order ``order``'s signed webhook to a running service, wait until it was handled.

    ``extra``: headers added to the webhook's; ``also`` runs with the session and those
    headers while the service runs. Returns the ``X-Request-ID`` echoed and the upstream call.
    """
    async with FakeUpstream() as upstream:
        upstream.route("POST", "/events").reply(200)
        logging_support.CLIENTS["upstream"] = ApiClient(upstream.url)
        try:
            async with (
                Service(load_config(_config(tmp_path, upstream.url))) as service,
                aiohttp.ClientSession(base_url=service.url) as http,
            ):
                body = json.dumps({"id": order}).encode()
                headers = {**standard_headers(f"evt_{order}", int(time.time()), body), **extra}
                async with http.post("/webhooks/shop", data=body, headers=headers) as response:
                    assert response.status == 200
                    echoed = response.headers["X-Request-ID"]
                if also is not None:
                    await also(http, headers)
                handled = f"handled order {order}"
                await eventually(lambda: bool(logs.matching(handled)), "handled")
        finally:
            await logging_support.CLIENTS.pop("upstream").aclose()
        (call,) = upstream.received("POST", "/events")
    return echoed, call


async def test_one_webhook_shares_its_request_id_from_the_request_to_the_upstream(
    tmp_path: Path, logs: Captured
) -> None:
    async def rejected_and_health(http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        bad = {**headers, "webhook-signature": "v1,AAAA", "X-Request-ID": "bad-req"}
        async with http.post("/webhooks/shop", data=b"{}", headers=bad) as response:
            assert response.status == 401
            assert response.headers["X-Request-ID"] == "bad-req"
        async with http.get("/livez") as response:
            assert len(response.headers["X-Request-ID"]) == 32

    echoed, call = await _one_webhook(
        tmp_path, logs, "o-1", {"X-Request-ID": "webhook-req-1"}, rejected_and_health
    )
    assert echoed == "webhook-req-1"
    assert call.headers["X-Request-ID"] == "webhook-req-1"
    handler_lines = logs.matching("order o-1")
    assert len(handler_lines) == 2
    for line in handler_lines:
        assert line["correlation_id"] == "webhook-req-1"
        assert line["message_id"] == "shop:evt_o-1"
    (rejected,) = logs.matching("webhook rejected")
    assert rejected["correlation_id"] == "bad-req"
    assert "message_id" not in rejected


async def test_a_traced_webhook_without_a_request_id_is_correlated_by_its_trace_id(
    tmp_path: Path, logs: Captured, spans: InMemorySpanExporter
) -> None:
    echoed, call = await _one_webhook(tmp_path, logs, "o-2", {})
    (server,) = [s for s in spans.get_finished_spans() if s.name == "POST /webhooks/shop"]
    trace_id = f"{server.context.trace_id:032x}"
    assert echoed == trace_id
    assert call.headers["X-Request-ID"] == trace_id
    handler_lines = logs.matching("order o-2")
    assert len(handler_lines) == 2
    for line in handler_lines:
        assert line["correlation_id"] == trace_id
        assert line["trace_id"] == trace_id
