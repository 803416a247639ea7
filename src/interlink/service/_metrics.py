"""``/metrics``: the service's counters in the Prometheus text format.

A ``prometheus_client`` collector reads the live figures at scrape time from
where they are already kept (the receiver's ``SourceStats``, the worker's
``HandlerStats``, each transformer's ``TransformStats``, each client's
``ClientHealth``), so nothing on the hot path updates a second set of
counters. Labels are names from the config file and fixed outcome words:
never ids or URLs, so the number of series stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from interlink.service._runtime import Service

__all__ = ["metrics_route"]

_BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "forced_closed", "disabled")
_MESSAGE_OUTCOMES = (
    "acked",
    "retried",
    "dead_lettered",
    "duplicates",
    "released",
    "failed_to_settle",
)


class _ServiceCollector:
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        yield from self._webhooks(service)
        yield from self._messages(service)
        yield from self._clients(service)

    def _webhooks(self, service: Service) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "interlink_webhooks_received",
            "Webhooks received, by source and outcome (rejected ones by reason).",
            labels=["source", "outcome", "reason"],
        )
        receiver = service.receiver
        for name, stats in receiver.stats.items() if receiver is not None else ():
            received.add_metric([name, "accepted", ""], stats.accepted)
            received.add_metric([name, "duplicate", ""], stats.duplicates)
            received.add_metric([name, "handshake", ""], stats.handshakes)
            received.add_metric([name, "too_large", ""], stats.too_large)
            received.add_metric([name, "unavailable", ""], stats.unavailable)
            for reason, count in sorted(stats.rejected.items()):
                received.add_metric([name, "rejected", reason], count)
        yield received

    def _messages(self, service: Service) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "interlink_messages",
            "Deliveries finished, by queue, handler and outcome.",
            labels=["queue", "handler", "outcome"],
        )
        in_flight = GaugeMetricFamily(
            "interlink_messages_in_flight",
            "Deliveries being handled now.",
            labels=["queue", "handler"],
        )
        seconds = CounterMetricFamily(
            "interlink_message_processing_seconds",
            "Total time spent in handlers, by queue and handler.",
            labels=["queue", "handler"],
        )
        failures = CounterMetricFamily(
            "interlink_transform_failures",
            "Records a transformer refused, by transformer and field.",
            labels=["transformer", "field"],
        )
        worker = service.worker
        if worker is not None:
            for (queue, handler), stats in worker.stats().items():
                for outcome in _MESSAGE_OUTCOMES:
                    processed.add_metric([queue, handler, outcome], getattr(stats, outcome))
                in_flight.add_metric([queue, handler], stats.in_flight)
                seconds.add_metric([queue, handler], stats.processing_seconds)
            seen: set[int] = set()
            for handler_setup in worker.handlers:
                transform: Any = getattr(handler_setup.transform, "inner", handler_setup.transform)
                stats_of = getattr(transform, "stats", None)
                if stats_of is None or id(transform) in seen:
                    continue
                seen.add(id(transform))
                for field, count in sorted(stats_of.failures_by_field.items()):
                    failures.add_metric([stats_of.name, field or "(record)"], count)
        yield processed
        yield in_flight
        yield seconds
        yield failures

    def _clients(self, service: Service) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "interlink_client_calls", "Calls made by each API client.", labels=["client"]
        )
        failed = CounterMetricFamily(
            "interlink_client_failures", "Calls that failed, by client.", labels=["client"]
        )
        state = GaugeMetricFamily(
            "interlink_client_breaker_state",
            "1 for the current state of each client's circuit breaker.",
            labels=["client", "state"],
        )
        for name, client in service.clients.items():
            health = client.health()
            requests.add_metric([name], health.requests)
            failed.add_metric([name], health.failures)
            if health.breaker_state is not None:
                for known in _BREAKER_STATES:
                    state.add_metric([name, known], 1.0 if health.breaker_state == known else 0.0)
        yield requests
        yield failed
        yield state


def metrics_route(service: Service) -> Route:
    """``GET /metrics`` for ``service``, with its own registry (no global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])
