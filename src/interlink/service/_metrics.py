"""``/metrics``: the service's metrics in the Prometheus text format, or OpenMetrics.

A scraper that asks for ``application/openmetrics-text`` (Prometheus does)
gets OpenMetrics, whose histogram buckets carry exemplars: the trace and span
ids of a recent observation made inside a sampled span. Anything else gets
the classic text format (``prometheus_client.exposition.choose_encoder``).

``watch_service`` makes the service's ``MetricsRecorder``
(``interlink.observability``) and points it at the clients and the webhook
receiver; ``Service._start`` hands it the worker before the worker fetches.
Most figures are read at scrape time from where the parts already keep them;
only what no part counts by itself (durations, retries, breaker transitions,
rejections) is kept from the event hooks (see the recorder's module).

Queue depth, oldest message age and dead letters come from the broker, whose
calls are async: each scrape reads them (every queue concurrently, each within
``service.readiness_timeout``, as ``/health`` does) before writing the
response. A background task refreshing them every few seconds was the other
choice; reading on scrape does no work while nobody scrapes, serves figures as
fresh as the scrape, and shows a broker too slow to answer as missing gauges
plus ``interlink_queue_stats_errors_total`` rather than as stale numbers. A
Prometheus scrape every 15 s costs one ``stats`` and one dead-letter count per
queue.

With ``observability.metrics.enabled: false`` no recorder is made, nothing
subscribes to any hook, and ``/metrics`` is not served (404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.observability._metrics import MetricsRecorder
from interlink.service._health import configured_queues

if TYPE_CHECKING:
    from interlink.service._runtime import Service

__all__ = ["metrics_route", "watch_service"]


def watch_service(service: Service) -> MetricsRecorder | None:
    """A recorder watching ``service``'s clients and receiver, or ``None``.

    ``None`` when metrics are off, and in a process with no HTTP side (a
    worker without ``--listen`` or ``service.worker_listen``): nothing could
    scrape what it counted, and every client call and message would pay for
    counting it.
    """
    if not service.config.observability.metrics.enabled or service.listen is None:
        return None
    recorder = MetricsRecorder()
    for client in service.clients.values():
        recorder.watch_client(client)
    if service.receiver is not None:
        recorder.watch_receiver(service.receiver)
    return recorder


def metrics_route(service: Service) -> Route:
    """``GET /metrics`` for ``service``, with its own registry (no global state)."""
    registry = CollectorRegistry(auto_describe=False)
    recorder = service.metrics
    if recorder is not None:
        registry.register(recorder)
    queues = configured_queues(service.config)
    within = float(service.config.service.readiness_timeout)

    async def metrics(request: Request) -> Response:
        if recorder is not None:
            await recorder.refresh_queues(service.broker, queues, within=within)
        # The text format, or OpenMetrics (with exemplars) for a scraper that asks for it.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"content-type": content_type})

    return Route("/metrics", metrics, methods=["GET"])
