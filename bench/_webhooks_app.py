"""The servers ``bench/webhooks.py`` sends signed webhooks to, on uvicorn.

Two ASGI app factories, both answering ``POST /webhooks/bench`` with the
Standard Webhooks v1 headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) and reading the secret from ``INTERLINK_BENCH_SECRET``:

- ``starlette_app()``: the verify-only baseline. A minimal Starlette app, one
  route, whose endpoint reads the body, checks the timestamp window (300 s)
  and the HMAC-SHA256 with the bare ``hmac`` module and ``compare_digest``,
  and answers 200. No deduplication, nothing stored.
- ``interlink_app()``: ``interlink.webhooks.WebhookReceiver`` with one source
  (scheme ``standard``, queue ``bench.events``) and the SQLite broker at
  ``sqlite:///$INTERLINK_BENCH_DB`` (``synchronous=FULL``, its default): verify,
  deduplicate, publish durably, then 2xx with a receipt. No tracer provider is
  set, so the receiver takes its untraced path.
- ``interlink_traced_app()``: the same receiver (its own SQLite file) with
  tracing and metrics on, as the service sets them up: ``configure_tracing``
  with sampling ratio 1.0 (interlink's ``LeanTracerProvider``: parent-based
  ratio sampling, spans batched with the SDK ``BatchSpanProcessor``'s default
  queue and batch sizes) exporting to ``DiscardingExporter``, whose ``export``
  reads every span of the batch, as a real exporter would, drops them and
  returns ``SUCCESS``; and a ``MetricsRecorder``
  watching the receiver (its request-duration histogram observes every
  webhook, with the SERVER span as exemplar; the counters by outcome are read
  at scrape time), registered on a ``CollectorRegistry`` served at
  ``GET /metrics`` (the benchmark scrapes it once, after the timed runs, as a
  check: a Prometheus scrape every 15 s would be one request among tens of
  thousands). Each webhook makes two spans (``POST /webhooks/bench`` SERVER,
  ``publish bench.events`` PRODUCER, which writes ``traceparent`` into the
  stored message's headers).
- ``interlink_traced_app(0.1)`` (the app ``interlink_traced_tenth``): the
  same at sampling ratio 0.1, for the informational figure beside issue 8's
  target. One webhook in ten makes its two spans; the other nine still carry
  an unsampled ``traceparent``, with a span id of their own, into the stored
  message.

Run as a script (``python bench/_webhooks_app.py <app> [--cpu N]``, ``<app>`` one of ``APPS``)
it is the server process the benchmark starts: it pins itself to CPU ``N``
first (so every thread it starts later, SQLite's writer included, runs
there), builds the app and freezes what that made (``gc.freeze``, as
``interlink serve`` does once the service started; the same for all three
apps), binds ``127.0.0.1`` on a free port itself, writes ``port=<n>`` as its
first line on stdout, then serves with uvicorn (uvloop, httptools, one
process) until SIGTERM/SIGINT or until its stdin closes, so it stops with the
benchmark even if the benchmark dies without cleaning up.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gc
import hmac
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _upstream_app import serve

PATH = "/webhooks/bench"
QUEUE = "bench.events"
SOURCE = "bench"
SECRET_ENV = "INTERLINK_BENCH_SECRET"
DB_ENV = "INTERLINK_BENCH_DB"
METRICS_PATH = "/metrics"
TOLERANCE_SECONDS = 300


def _secret() -> str:
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise RuntimeError(f"set {SECRET_ENV} to the whsec_ secret the webhooks are signed with")
    return secret


def starlette_app() -> Any:
    """The verify-only baseline: read the body, check the Standard Webhooks v1 HMAC, 200."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    key = base64.b64decode(_secret().removeprefix("whsec_"))
    b64 = binascii.b2a_base64
    digest = hmac.digest
    compare = hmac.compare_digest

    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not (msg_id and stamp and signatures and stamp.isdigit()):
            return PlainTextResponse("bad headers", status_code=400)
        if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
            return PlainTextResponse("timestamp out of tolerance", status_code=401)
        expected = b64(digest(key, f"{msg_id}.{stamp}.".encode() + body, "sha256"), newline=False)
        for entry in signatures.split(" "):
            version, _, value = entry.partition(",")
            if version == "v1" and compare(expected, value.encode()):
                return Response(status_code=200)
        return PlainTextResponse("no matching signature", status_code=401)

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


def interlink_app() -> Any:
    """interlink's receiver: verify, deduplicate, publish durably to SQLite, then 2xx."""
    from interlink.webhooks import WebhookReceiver, WebhookSource

    db = os.environ.get(DB_ENV)
    if not db:
        raise RuntimeError(f"set {DB_ENV} to the SQLite file the receiver publishes to")
    source = WebhookSource(
        name=SOURCE, path=PATH, scheme="standard", secrets=[_secret()], queue=QUEUE
    )
    return WebhookReceiver([source], broker=f"sqlite:///{db}")


def interlink_traced_app(ratio: float = 1.0) -> Any:
    """``interlink_app()`` with tracing (``ratio``, spans batched and discarded) and metrics."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from interlink.observability import MetricsRecorder, configure_tracing
    from interlink.service._config import TracingConfig

    class DiscardingExporter(SpanExporter):
        """Receives every batch the provider exports, reads each span, and drops them."""

        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Any) -> SpanExportResult:
            for _span in spans:  # read each one, as a real exporter does
                self.spans += 1
            return SpanExportResult.SUCCESS

    exporter = DiscardingExporter()
    configure_tracing(
        TracingConfig(sampling_ratio=ratio), service_name="interlink-bench", exporter=exporter
    )
    receiver = interlink_app()
    recorder = MetricsRecorder()
    recorder.watch_receiver(receiver)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(recorder)
    metrics_headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]

    async def metrics(send: Any) -> None:
        body = generate_latest(registry) + f"# spans exported: {exporter.spans}\n".encode()
        await send({"type": "http.response.start", "status": 200, "headers": metrics_headers})
        await send({"type": "http.response.body", "body": body})

    # A plain function handing back the coroutine to await (uvicorn is told the app is ASGI 3):
    # routing /metrics costs the webhooks one call, not a coroutine of its own.
    def app(scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "http" and scope["path"] == METRICS_PATH:
            return metrics(send)
        return receiver(scope, receive, send)

    return app


APPS: dict[str, Callable[[], Any]] = {
    "starlette": starlette_app,
    "interlink": interlink_app,
    "interlink_traced": interlink_traced_app,
    "interlink_traced_tenth": lambda: interlink_traced_app(0.1),
    # every webhook unsampled: what tracing being on costs before anything is recorded
    "interlink_traced_unsampled": lambda: interlink_traced_app(0.0),
}


def _frozen(factory: Callable[[], Any]) -> Callable[[], Any]:
    """``factory``, then ``gc.freeze()``: the start-up objects, as ``Service.run`` leaves them."""

    def build() -> Any:
        app = factory()
        gc.freeze()
        return app

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve one of the webhook benchmark's apps")
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to this CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    return serve(_frozen(APPS[args.app]), factory=True)


if __name__ == "__main__":
    sys.exit(main())
